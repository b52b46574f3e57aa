"""Pair and triplet searches of the ADL queries (Q5-Q8), one event at a time.

The results are those of the columnar code (numpy's float32 four-vectors, sums and products
in float32 in its order, ``((e*e - px*px) - py*py) - pz*pz`` of ``(a + b) + c``), bin for bin,
at a fraction of its cost:

* px and py come in as flat arrays (numpy's vectorised ``pt * cos(phi)``, 4 ns an object);
* pz and E are computed here, only for the objects of events that can pass, with
  :func:`_fast` (6 ns an object) rather than as numpy does (37 ns with libm's float32 sinh
  and cosh). A search then knows each candidate mass to within a margin; an event whose
  outcome that margin could change (a mass that close to a window edge, two candidates that
  close to the target) is searched again after the first pass, with pz and E computed by
  numpy itself for its objects alone (:func:`numpy_pz_e`): on the benchmark data 1 in
  20,000 of Q5's searches, 1 in 1,700 of Q8's, 1 in 80 of Q6's. numpy's float32 sinh and
  cosh are libm's on most CPUs but its own vector code where the CPU has AVX-512, and the
  two differ in the last bit: only numpy reproduces numpy.
  So is an event whose fast search met a NaN or infinite m^2 (from NaN or infinite pt, eta,
  phi or mass), or systems large enough for numpy's to overflow where the fast did not
  (:data:`HUGE`); there, as in the columnar code, a NaN m^2 is a NaN mass, in no window and
  never closest, but kept by ``ak.argmin`` as its first candidate.

Each event's px, py, pz, E are loaded into a small (objects, 4) buffer, which the loops read
faster than four flat arrays; Q6's events of 4 to 8 jets are searched side by side instead,
many events of one jet count in one vectorised loop (:func:`_tile_search`). Two collections
(muons, then electrons) are searched as one list per event, as ``ak.concatenate`` made them.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from analysis_kernels.kernels.delta_r import closer_than

F32 = np.float32
INF = F32(np.inf)
# How far, relative to e^2 + |p|^2 of a system, the m^2 of the fast and of numpy's
# four-vectors can be apart. px and py are the same; pz and E differ by less than 2^-20 of E
# (each side within about 2^-21 of exact: 1.5 ulp of the fast, 1.8 ulp of libm's sinh, 2.5
# of numpy's E), which moves m^2 by 2^-18 of e^2 at most, and each side's nine roundings by
# 2^-21 of e^2 + |p|^2: 2^-16 is three times the sum of those, and more than ten times the
# most seen (tests/test_combinatorics.py).
MARGIN = F32(2.0**-16)
# The sum of e^2 + |p|^2 over an event's candidates from which a fast search is unsure: a NaN
# or infinite m^2 makes the sum NaN or infinite, and below it no px, py, pz or E of the fast
# or of numpy's four-vectors is near overflow, so MARGIN holds. One addition a candidate,
# where a check of each object in _load cost Q5 and Q6 a third more.
HUGE = F32(2.0**120)
# The searches' event loops are compiled without numba's reference counting (``_nrt=False``;
# :func:`_search` allocates what they write). With it, every array an inlined helper took
# was counted up and down, atomically, once per event: 64% of Q8's search, 15% of Q6's.
UNCOUNTED = {"cache": True, "error_model": "numpy", "_nrt": False}


def _search(kernel, n, dtypes, *args):
    """Runs a search kernel over ``n`` events: it writes a row per event it keeps into
    arrays of ``dtypes``, and the events it is unsure of with their rows; returns those, cut
    to what it wrote."""
    out = [np.empty(n, dtype) for dtype in dtypes]
    unsure, slots = np.empty(n, np.int64), np.empty(n, np.int64)
    kept, n_unsure = kernel(*args, *out, unsure, slots)
    return [o[:kept] for o in out], unsure[:n_unsure], slots[:n_unsure]


@numba.njit(cache=True, inline="always")
def _mass(px, py, pz, e):
    m2 = e * e - px * px - py * py - pz * pz
    return np.sqrt(m2) if m2 > 0 else F32(0)


@numba.njit(cache=True, inline="always")
def _fast(pt, eta, mass):
    """pz = pt sinh(eta) and E = sqrt((pt cosh(eta))^2 + m^2) in float32 from one exp:
    within 2^-21 of E of exact (sinh near 0 loses digits of itself, not of E)."""
    ex = np.exp(eta)
    inv = F32(1) / ex
    half = F32(0.5) * pt
    c = half * (ex + inv)
    return half * (ex - inv), np.sqrt(c * c + mass * mass)


# exp(x) for |x| <= EXP_MOST as exp(x / 1024) ** 1024: a degree-9 Taylor polynomial (its
# remainder below 2^-56 for |x| / 1024 <= 0.086) and ten squarings, in float64, each doubling
# the relative error (2^-52 or so from the polynomial's roundings) and adding one rounding:
# within 2^-40 of exact, against float32's 2^-24. No call and no branch, so a loop over
# objects vectorises. Beyond EXP_MOST (float32's exp overflows near 88.7) and for NaN: NaN.
EXP_MOST = 88.0
_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(9, -1, -1))


@numba.njit(cache=True, inline="always")
def _exp64(x):
    y = x * (1.0 / 1024.0)
    p = _TAYLOR[0]
    for c in _TAYLOR[1:]:
        p = p * y + c
    for _ in range(10):
        p = p * p
    return p if abs(x) <= EXP_MOST else np.nan


@numba.njit(cache=True, error_model="numpy")
def pz_e(pt, eta, mass):
    """pz and E (float32) of every object of one ``mass``, computed in float64 from
    :func:`_exp64`: each within 2^-24 (half a float32 ulp) of E of exact plus 2^-39, where
    :func:`_fast` is within 2^-21, so :data:`MARGIN` holds for them; NaN where |eta| >
    :data:`EXP_MOST`, which leaves a search unsure. At 1.1 ns an object, vectorised, against
    2.2 for :func:`_fast`, it pays where most objects are needed (DT's muons)."""
    pz = np.empty(len(pt), dtype=np.float32)
    e = np.empty(len(pt), dtype=np.float32)
    m2 = np.float64(mass) * np.float64(mass)
    for k in range(len(pt)):
        ex = _exp64(np.float64(eta[k]))
        inv = 1.0 / ex
        half = 0.5 * np.float64(pt[k])
        c = half * (ex + inv)
        pz[k] = np.float32(half * (ex - inv))
        e[k] = np.float32(np.sqrt(c * c + m2))
    return pz, e


def numpy_pz_e(pt, eta, mass, index) -> tuple[np.ndarray, np.ndarray]:
    """pz and E of the objects at ``index`` as :func:`analysis_kernels.kinematics.four_vector`
    computes them, by numpy itself (float32; ``mass`` an array or one float32)."""
    pt, eta = pt[index], eta[index]
    mass = mass[index] if np.ndim(mass) else mass
    with np.errstate(all="ignore"):
        c = pt * np.cosh(eta)
        return pt * np.sinh(eta), np.sqrt(c * c + mass * mass)


def numpy_pz_e_of_events(offsets, pt, eta, mass, events) -> tuple[np.ndarray, ...]:
    """:func:`numpy_pz_e` of the objects of ``events``, packed in their order: event k's
    objects from ``starts[k]`` on. Returns starts, pz, E."""
    lo, counts = offsets[events], offsets[events + 1] - offsets[events]
    starts = np.zeros(len(events) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    index = np.repeat(lo - starts[:-1], counts) + np.arange(starts[-1])
    return (starts, *numpy_pz_e(pt, eta, mass, index))


@numba.njit(cache=True)
def _buffer(offsets):
    """An (objects of the largest event, 4) float32 buffer for one event's px, py, pz, E
    (``offsets``: a collection's, or a packing's starts, :func:`numpy_pz_e_of_events`)."""
    most = 0
    for ev in range(len(offsets) - 1):
        most = max(most, offsets[ev + 1] - offsets[ev])
    return np.empty((most, 4), dtype=np.float32)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _load(buf, lo, hi, px, py, pt, eta, mass):
    """px, py and :func:`_fast` pz, E of objects lo..hi-1 into the rows of ``buf``. Inlined
    (a call cost Q8's search a fifth), so its callers take numpy's error model: an exp that
    underflows gives infinities, then an unsure search, as numpy would, not an exception."""
    for i in range(hi - lo):
        k = lo + i
        pz, e = _fast(pt[k], eta[k], mass[k])
        buf[i, 0], buf[i, 1], buf[i, 2], buf[i, 3] = px[k], py[k], pz, e


@numba.njit(cache=True, inline="always")
def _load_given(buf, lo, hi, px, py, pz, e, at):
    """px, py of objects lo..hi-1 and the pz, E given for them from ``at`` on."""
    for i in range(hi - lo):
        buf[i, 0], buf[i, 1], buf[i, 2], buf[i, 3] = px[lo + i], py[lo + i], pz[at + i], e[at + i]


@numba.njit(cache=True, inline="always")
def _system(px, py, pz, e, margin):
    """Mass (numpy's ``sqrt(maximum(m2, 0))``: 0 for a negative m^2, NaN for a NaN), m^2 and
    the margin on m^2 of a system (``margin`` times e^2 + |p|^2)."""
    ee, xx, yy, zz = e * e, px * px, py * py, pz * pz
    m2 = ee - xx - yy - zz
    return (F32(0) if m2 < 0 else np.sqrt(m2)), m2, margin * (ee + xx + yy + zz)


@numba.njit(cache=True, inline="always")
def _nan_mass(buf, size):
    """Whether the system of the first ``size`` rows of an event's buffer has a NaN mass: as
    ``ak.argmin``'s first candidate it stays the chosen one, no distance being below NaN."""
    x, y, z, e = buf[0, 0], buf[0, 1], buf[0, 2], buf[0, 3]
    for r in range(1, size):
        x, y, z, e = x + buf[r, 0], y + buf[r, 1], z + buf[r, 2], e + buf[r, 3]
    return np.isnan(_system(x, y, z, e, F32(0))[1])


@numba.njit(cache=True, inline="always")
def _pair(buf, a, b, margin):
    """:func:`_system` of rows a and b of an event's buffer."""
    return _system(
        buf[a, 0] + buf[b, 0],
        buf[a, 1] + buf[b, 1],
        buf[a, 2] + buf[b, 2],
        buf[a, 3] + buf[b, 3],
        margin,
    )


@numba.njit(cache=True, inline="always")
def _distance(m, margin2, target, margin):
    """|m - target| and how far it can be from numpy's: margin2 / m (inf for a mass too small
    to bound that way), plus ``margin`` times ``target`` for the rounding of the distance."""
    bound = margin2 / m if m * m > 4 * margin2 else INF
    return abs(m - target), bound + margin * target


@numba.njit(cache=True, inline="always")
def _both_charges(charge, lo, hi):
    """Whether objects lo..hi-1 have two different charges (an opposite pair exists)."""
    i = lo + 1
    while i < hi and charge[i] == charge[lo]:
        i += 1
    return i < hi


@numba.njit(cache=True)
def at_least_n_above(offsets, values, threshold, n):
    """Per event, whether at least ``n`` of its values are above ``threshold`` (Q4's
    ``ak.sum(values > threshold, axis=1) >= n``). A running count over the flat values, then
    one difference per event: no branch on the data, 5x an event loop that stops at ``n``."""
    out = np.empty(len(offsets) - 1, dtype=np.bool_)
    if n <= 0:
        out[:] = True
        return out
    running = np.empty(len(values) + 1, dtype=np.int64)
    count = 0
    running[0] = 0
    for i in range(len(values)):
        count += values[i] > threshold
        running[i + 1] = count
    for ev in range(len(offsets) - 1):
        out[ev] = running[offsets[ev + 1]] - running[offsets[ev]] >= n
    return out


@numba.njit(cache=True)
def _pair_in_window(buf, charge, lo, n, low, high, margin):
    """Whether an opposite-charge pair of the event's ``n`` objects surely has a mass in
    (low, high), and if not, whether one's m^2 lay within its margin of low^2 or high^2 or
    was NaN. With a margin of 0 (numpy's pz and E) that is the columnar comparison of the
    masses: an m^2 of low^2 or high^2 exactly is a mass of low or high, and a NaN one, or one
    whose e^2 + |p|^2 overflows (it then rounds to 0 or far above any window), in none."""
    unsure = False
    for i in range(n):
        for j in range(i + 1, n):
            if charge[lo + i] == charge[lo + j]:
                continue
            m, m2, margin2 = _pair(buf, i, j, margin)
            near = not (abs(m2 - low * low) > margin2 and abs(m2 - high * high) > margin2)
            if m > low and m < high and not near:
                return True, False
            unsure |= near
    return False, unsure


def opposite_pair_in_window(offsets, px, py, pt, eta, mass, charge, low, high, margin=MARGIN):
    """Per event, whether some opposite-charge pair has a mass in (low, high)."""
    (out,), unsure, _ = _search(
        _pairs_in_window, len(offsets) - 1, [np.bool_],
        offsets, px, py, pt, eta, mass, charge, low, high, margin, _buffer(offsets),
        np.empty(len(offsets) - 1, dtype=np.int64),
    )  # fmt: skip
    if len(unsure):
        exact = numpy_pz_e_of_events(offsets, pt, eta, mass, unsure)
        _pairs_in_window_again(out, unsure, *exact, offsets, px, py, charge, low, high)
    return out


@numba.njit(**UNCOUNTED)
def _pairs_in_window(offsets, px, py, pt, eta, mass, charge, low, high, margin, buf, pairs,
                     out, unsure, slots):  # fmt: skip
    """:func:`opposite_pair_in_window` with fast pz and E, and the events it is unsure of.
    The events with a pair are listed first, branch-free, into ``pairs``: a loop over all
    events mispredicted its branch on the count in most (Q5: 64% have fewer than 2 muons)."""
    n_pairs = 0
    for ev in range(len(offsets) - 1):
        out[ev] = False
        pairs[n_pairs] = ev
        n_pairs += offsets[ev + 1] - offsets[ev] >= 2
    n_unsure = 0
    for ev in pairs[:n_pairs]:
        lo, hi = offsets[ev], offsets[ev + 1]
        if not _both_charges(charge, lo, hi):
            continue
        _load(buf, lo, hi, px, py, pt, eta, mass)
        out[ev], doubt = _pair_in_window(buf, charge, lo, hi - lo, low, high, margin)
        if doubt:
            unsure[n_unsure] = slots[n_unsure] = ev
            n_unsure += 1
    return len(offsets) - 1, n_unsure


@numba.njit(cache=True)
def _pairs_in_window_again(out, events, starts, pz, e, offsets, px, py, charge, low, high):
    """The ``events`` searched again with the pz and E given (packed)."""
    buf = _buffer(starts)
    for k in range(len(events)):
        lo, hi = offsets[events[k]], offsets[events[k] + 1]
        _load_given(buf, lo, hi, px, py, pz, e, starts[k])
        out[events[k]] = _pair_in_window(buf, charge, lo, hi - lo, low, high, F32(0))[0]


TABLE_MOST = 64  # events with more objects than this search their trijets in nested loops


@numba.njit(cache=True)
def _colex_triplets(most):
    """Every triplet (a, b, c), a < b < c < ``most``, in colex order (by c, then b, then a):
    the triplets of n objects are its first C(n, 3) rows, and read backwards as
    (n-1-c, n-1-b, n-1-a) they are ``ak.combinations``' order, (i, j, k) ascending."""
    rows = np.empty((most * (most - 1) * (most - 2) // 6, 3), dtype=np.uint8)
    t = 0
    for c in range(most):
        for b in range(c):
            for a in range(b):
                rows[t, 0], rows[t, 1], rows[t, 2] = a, b, c
                t += 1
    return rows


TRIPLETS = _colex_triplets(TABLE_MOST)


@numba.njit(cache=True, inline="always")
def _closer(state, m, margin2, target, margin, i, j, k):
    """One candidate of a search for the one closest to ``target``: ``state`` is (best
    distance, its margin, the least distance less its margin among the others, the sum of
    the margins on m^2, the best's rows i, j, k). Branch-free: which candidate wins changes
    unpredictably, and a mispredicted branch cost more than the selects."""
    best, best_margin, others, total, bi, bj, bk = state
    distance, d_margin = _distance(m, margin2, target, margin)
    better = distance < best
    others = min(others, best - best_margin if better else distance - d_margin)
    return (
        distance if better else best,
        d_margin if better else best_margin,
        others,
        total + margin2,
        i if better else bi,
        j if better else bj,
        k if better else bk,
    )


@numba.njit(cache=True, inline="always")
def _unsure(best, best_margin, others, total, margin):
    """Whether a search by :func:`_closer` may choose otherwise with numpy's four-vectors:
    another candidate's distance less its margin is not above the best's plus its margin,
    or the margin may not hold (the margins' sum not below ``margin`` times :data:`HUGE`,
    NaN included)."""
    return not others > best + best_margin or not total < margin * HUGE


@numba.njit(cache=True, inline="always")
def _trijet(buf, i, j, k, margin):
    """:func:`_system` of rows i, j, k, summed (i + j) + k as the columnar sums are."""
    return _system(
        (buf[i, 0] + buf[j, 0]) + buf[k, 0],
        (buf[i, 1] + buf[j, 1]) + buf[k, 1],
        (buf[i, 2] + buf[j, 2]) + buf[k, 2],
        (buf[i, 3] + buf[j, 3]) + buf[k, 3],
        margin,
    )


@numba.njit(cache=True)
def _closest_trijet(buf, n, target, margin):
    """Rows (i, j, k) of the trijet of the event's ``n`` jets whose mass is closest to
    ``target`` (the first such), and whether another trijet may be as close with numpy's
    four-vectors (its distance less its margin not above the best's plus its margin) or the
    margin may not hold (:data:`HUGE`). The triplets come from one flat loop over
    :data:`TRIPLETS`, where nested loops mispredicted the end of each short inner one (Q6's
    search kernel 3.79 -> 3.08 ms per 100k events, before :data:`UNCOUNTED`)."""
    state = (INF, F32(0), INF, F32(0), 0, 1, 2)
    if n <= TABLE_MOST:
        for t in range(n * (n - 1) * (n - 2) // 6 - 1, -1, -1):
            i, j, k = n - 1 - TRIPLETS[t, 2], n - 1 - TRIPLETS[t, 1], n - 1 - TRIPLETS[t, 0]
            m, _, margin2 = _trijet(buf, i, j, k, margin)
            state = _closer(state, m, margin2, target, margin, i, j, k)
    else:
        for i in range(n):
            for j in range(i + 1, n):
                for k in range(j + 1, n):
                    m, _, margin2 = _trijet(buf, i, j, k, margin)
                    state = _closer(state, m, margin2, target, margin, i, j, k)
    best, best_margin, others, total, i, j, k = state
    return i, j, k, _unsure(best, best_margin, others, total, margin)


def trijet_closest_to(offsets, px, py, pt, eta, mass, btag, target, margin=MARGIN):
    """For the events with >= 3 jets, in order: px, py and the largest b-tag of the trijet
    whose mass is closest to ``target``."""
    out, unsure, slots = _search(
        _trijets, len(offsets) - 1, [F32, F32, F32],
        offsets, px, py, pt, eta, mass, btag, target, margin,
    )  # fmt: skip
    if len(unsure):
        exact = numpy_pz_e_of_events(offsets, pt, eta, mass, unsure)
        _trijets_again(*out, unsure, slots, *exact, offsets, px, py, btag, target)
    return tuple(out)


@numba.njit(cache=True, inline="always")
def _write_trijet(out, slot, buf, lo, btag, i, j, k):
    out_px, out_py, out_btag = out
    out_px[slot] = buf[i, 0] + buf[j, 0] + buf[k, 0]
    out_py[slot] = buf[i, 1] + buf[j, 1] + buf[k, 1]
    out_btag[slot] = max(max(btag[lo + i], btag[lo + j]), btag[lo + k])


# Events with 4 to SIDE_BY_SIDE jets are searched side by side, TILE events of one jet count
# at a time: each trijet of all of them in one loop, which the compiler vectorises. One at a
# time, their searches took Q6's search kernel 1.3 ms per 100k events; side by side, 0.3.
SIDE_BY_SIDE = 8
TILE = 256


@numba.njit(cache=True)
def _by_count(offsets):
    """The events ordered by their number of objects (all above SIDE_BY_SIDE as one), each
    with its row of the output (events with >= 3 objects, in order); where each count's
    events start in that order; the number of rows. Branch-free: an event loop that branched
    on the count mispredicted about once an event."""
    n = len(offsets) - 1
    starts = np.zeros(SIDE_BY_SIDE + 3, dtype=np.int64)
    for ev in range(n):
        starts[min(offsets[ev + 1] - offsets[ev], SIDE_BY_SIDE + 1) + 1] += 1
    starts = np.cumsum(starts)
    at = starts.copy()
    order, rows = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    kept = 0
    for ev in range(n):
        count = offsets[ev + 1] - offsets[ev]
        place = min(count, SIDE_BY_SIDE + 1)
        order[at[place]], rows[at[place]] = ev, kept
        at[place] += 1
        kept += count >= 3
    return order, rows, starts, kept


@numba.njit(**UNCOUNTED)
def _tile_load(tile, events, offsets, px, py, pt, eta, mass, count):
    """px, py and :func:`_fast` pz, E of the ``count`` jets of each of ``events`` into the
    columns of ``tile``: row 4 s + c holds component c of every event's jet s."""
    for e in range(len(events)):
        lo = offsets[events[e]]
        for s in range(count):
            pz, en = _fast(pt[lo + s], eta[lo + s], mass[lo + s])
            tile[4 * s, e], tile[4 * s + 1, e] = px[lo + s], py[lo + s]
            tile[4 * s + 2, e], tile[4 * s + 3, e] = pz, en


@numba.njit(**UNCOUNTED)
def _tile_search(tile, size, count, target, margin, best, best_margin, others, total, chosen):
    """:func:`_closest_trijet` of ``size`` events of ``count`` jets each, side by side: the
    same sums, the same order of trijets, :func:`_closer`'s state per event (``chosen``:
    the best's row of :data:`TRIPLETS`)."""
    for e in range(size):
        best[e], best_margin[e], others[e], total[e], chosen[e] = INF, F32(0), INF, F32(0), 0
    for t in range(count * (count - 1) * (count - 2) // 6 - 1, -1, -1):
        i, j, k = (
            4 * (count - 1 - TRIPLETS[t, 2]),
            4 * (count - 1 - TRIPLETS[t, 1]),
            4 * (count - 1 - TRIPLETS[t, 0]),
        )
        for e in range(size):
            m, _, margin2 = _system(
                (tile[i, e] + tile[j, e]) + tile[k, e],
                (tile[i + 1, e] + tile[j + 1, e]) + tile[k + 1, e],
                (tile[i + 2, e] + tile[j + 2, e]) + tile[k + 2, e],
                (tile[i + 3, e] + tile[j + 3, e]) + tile[k + 3, e],
                margin,
            )
            state = (best[e], best_margin[e], others[e], total[e], chosen[e], 0, 0)
            state = _closer(state, m, margin2, target, margin, t, 0, 0)
            best[e], best_margin[e], others[e], total[e], chosen[e] = state[:5]


@numba.njit(cache=True, error_model="numpy")
def _trijets(offsets, px, py, pt, eta, mass, btag, target, margin, out_px, out_py,
             out_btag, unsure, slots):  # fmt: skip
    """:func:`trijet_closest_to` with fast pz and E, and the events it is unsure of with
    their rows in the output: an event's only trijet, the searches side by side, then one
    event at a time (more than :data:`SIDE_BY_SIDE` jets). The rows are written here, from
    the arrays themselves: an inlined helper given them would count each up and down per
    event (this function allocates, so it is not :data:`UNCOUNTED`)."""
    order, rows, starts, kept = _by_count(offsets)
    for q in range(starts[3], starts[4]):
        lo, row = offsets[order[q]], rows[q]
        out_px[row] = px[lo] + px[lo + 1] + px[lo + 2]
        out_py[row] = py[lo] + py[lo + 1] + py[lo + 2]
        out_btag[row] = max(max(btag[lo], btag[lo + 1]), btag[lo + 2])
    n_unsure = 0
    tile = np.empty((4 * SIDE_BY_SIDE, TILE), dtype=np.float32)
    best, best_margin = np.empty(TILE, dtype=np.float32), np.empty(TILE, dtype=np.float32)
    others, total = np.empty(TILE, dtype=np.float32), np.empty(TILE, dtype=np.float32)
    chosen = np.empty(TILE, dtype=np.int64)
    for count in range(4, SIDE_BY_SIDE + 1):
        for first in range(starts[count], starts[count + 1], TILE):
            events = order[first : min(first + TILE, starts[count + 1])]
            _tile_load(tile, events, offsets, px, py, pt, eta, mass, count)
            _tile_search(
                tile, len(events), count, target, margin, best, best_margin, others, total, chosen
            )
            for e in range(len(events)):
                lo, row, t = offsets[events[e]], rows[first + e], chosen[e]
                i, j, k = (
                    count - 1 - TRIPLETS[t, 2],
                    count - 1 - TRIPLETS[t, 1],
                    count - 1 - TRIPLETS[t, 0],
                )
                out_px[row] = px[lo + i] + px[lo + j] + px[lo + k]
                out_py[row] = py[lo + i] + py[lo + j] + py[lo + k]
                out_btag[row] = max(max(btag[lo + i], btag[lo + j]), btag[lo + k])
                if _unsure(best[e], best_margin[e], others[e], total[e], margin):
                    unsure[n_unsure], slots[n_unsure] = events[e], row
                    n_unsure += 1
    many = order[starts[SIDE_BY_SIDE + 1] :]
    most = 0
    for ev in many:
        most = max(most, offsets[ev + 1] - offsets[ev])
    buf = np.empty((most, 4), dtype=np.float32)
    for q in range(len(many)):
        lo, hi, row = offsets[many[q]], offsets[many[q] + 1], rows[starts[SIDE_BY_SIDE + 1] + q]
        _load(buf, lo, hi, px, py, pt, eta, mass)
        i, j, k, doubt = _closest_trijet(buf, hi - lo, target, margin)
        _write_trijet((out_px, out_py, out_btag), row, buf, lo, btag, i, j, k)
        if doubt:
            unsure[n_unsure], slots[n_unsure] = many[q], row
            n_unsure += 1
    return kept, n_unsure


@numba.njit(cache=True)
def _trijets_again(out_px, out_py, out_btag, events, slots, starts, pz, e, offsets, px, py,
                   btag, target):  # fmt: skip
    """The trijet ``ak.argmin`` picks in each of ``events``, with the pz and E given: the
    first unless another is strictly closer (a NaN distance is not; a NaN first stays)."""
    buf = _buffer(starts)
    for n in range(len(events)):
        lo, hi = offsets[events[n]], offsets[events[n] + 1]
        _load_given(buf, lo, hi, px, py, pz, e, starts[n])
        i, j, k = 0, 1, 2
        if not _nan_mass(buf, 3):
            i, j, k, _ = _closest_trijet(buf, hi - lo, target, F32(0))
        _write_trijet((out_px, out_py, out_btag), slots[n], buf, lo, btag, i, j, k)


@numba.njit(cache=True)
def _near(eta, phi, offsets, pt, l_eta, l_phi, ev, lep_min, cone):
    """Whether a lepton above ``lep_min`` lies within ``cone`` in Delta R of (eta, phi)."""
    for m in range(offsets[ev], offsets[ev + 1]):
        if pt[m] > lep_min and closer_than(eta, phi, l_eta[m], l_phi[m], cone):
            return True
    return False


@numba.njit(cache=True)
def isolated_jet_sum(jets, jet_min, muons, electrons, lep_min, cone):
    """Per event, the float32 sum of the pT of jets above ``jet_min`` with no muon or
    electron above ``lep_min`` within ``cone`` in Delta R (Delta phi wrapped into [-pi, pi)
    as :func:`analysis_kernels.kinematics.delta_phi`). Each collection is (offsets, pt, eta,
    phi)."""
    offsets, pt, eta, phi = jets
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.float32)
    for ev in range(n):
        total = F32(0)
        for j in range(offsets[ev], offsets[ev + 1]):
            if not pt[j] > jet_min:
                continue
            if _near(eta[j], phi[j], *muons, ev, lep_min, cone):
                continue
            if _near(eta[j], phi[j], *electrons, ev, lep_min, cone):
                continue
            total += pt[j]
        out[ev] = total
    return out


@numba.njit(cache=True, inline="always")
def _z_pair(buf, charge, lo, n, z_mass, margin, state, collection):
    """The search for the opposite-charge pair closest to ``z_mass`` (the first such), gone
    on over the event's ``n`` objects of one collection: ``state`` is :func:`_closer`'s,
    with a pair's rows a, b and its ``collection`` as the rows i, j, k."""
    for a in range(n):
        for b in range(a + 1, n):
            if charge[lo + a] != charge[lo + b]:
                m, _, margin2 = _pair(buf, a, b, margin)
                state = _closer(state, m, margin2, z_mass, margin, a, b, collection)
    return state


@numba.njit(cache=True, inline="always")
def _z_load(buf, lo, hi, px, py, pt, eta, mass, charge):
    """Loads an event's objects lo..hi-1 of one collection if an opposite-charge pair is
    among them (as :func:`_load`): how many to search, 0 if none."""
    if not _both_charges(charge, lo, hi):
        return 0
    _load(buf, lo, hi, px, py, pt, eta, mass)
    return hi - lo


@numba.njit(cache=True, inline="always")
def _z_load_given(buf, lo, hi, px, py, charge, pz, e, at):
    """:func:`_z_load` with the pz and E given from ``at`` on."""
    if not _both_charges(charge, lo, hi):
        return 0
    _load_given(buf, lo, hi, px, py, pz, e, at)
    return hi - lo


@numba.njit(cache=True, inline="always")
def _z_closest(mu_buf, mu_charge, mu_lo, n_mu, el_buf, el_charge, el_lo, n_el, z_mass, margin):
    """The pair closest to ``z_mass`` among an event's muon pairs (its ``n_mu`` loaded muons
    from ``mu_lo`` on), then electron pairs: its rows in its collection, -1 in the other (-1
    in both if no distance is below infinity), and whether it is unsure."""
    none = (INF, F32(0), INF, F32(0), -1, -1, -1)
    state = _z_pair(mu_buf, mu_charge, mu_lo, n_mu, z_mass, margin, none, 0)
    best, best_margin, others, total, a, b, collection = _z_pair(
        el_buf, el_charge, el_lo, n_el, z_mass, margin, state, 1
    )
    mu_a, mu_b = (a, b) if collection == 0 else (-1, -1)
    el_a, el_b = (a, b) if collection == 1 else (-1, -1)
    unsure = _unsure(best, best_margin, others, total, margin)
    return mu_a, mu_b, el_a, el_b, unsure


@numba.njit(cache=True, inline="always")
def _first_pair(mu_buf, mu_charge, mu_lo, n_mu, el_buf, el_charge, el_lo):
    """``ak.argmin``'s first candidate, the event's first two leptons (muons, then
    electrons; ``n_mu`` muons in the event), as :func:`_z_closest`'s rows, and whether it
    stays the chosen one: a same-flavour opposite-charge pair of NaN mass (any other pair's
    distance is infinite)."""
    if n_mu == 1:
        return 0, -1, 0, -1, False
    if n_mu > 1:
        nan = mu_charge[mu_lo] != mu_charge[mu_lo + 1] and _nan_mass(mu_buf, 2)
        return 0, 1, -1, -1, nan
    nan = el_charge[el_lo] != el_charge[el_lo + 1] and _nan_mass(el_buf, 2)
    return -1, -1, 0, 1, nan


@numba.njit(cache=True, inline="always")
def _leading(lo, hi, pt, phi, skip_a, skip_b, lead):
    """``lead`` (whether any, pT, phi) gone on over an event's objects lo..hi-1 of one
    collection but rows skip_a and skip_b, as ``ak.argmax`` over the muons, then the
    electrons: the first, then only a strictly higher pT (a NaN first stays)."""
    found, best_pt, best_phi = lead
    for k in range(hi - lo):
        if k != skip_a and k != skip_b and (not found or pt[lo + k] > best_pt):
            found, best_pt, best_phi = True, pt[lo + k], phi[lo + k]
    return found, best_pt, best_phi


@numba.njit(cache=True, inline="always")
def _lead(mu_lo, mu_hi, mu_pt, mu_phi, mu_a, mu_b, el_lo, el_hi, el_pt, el_phi, el_a, el_b):
    """pT and phi of the leading lepton outside the pair (its rows in its collection, -1 in
    the other)."""
    lead = _leading(mu_lo, mu_hi, mu_pt, mu_phi, mu_a, mu_b, (False, F32(0), F32(0)))
    _, pt, phi = _leading(el_lo, el_hi, el_pt, el_phi, el_a, el_b, lead)
    return pt, phi


def lead_outside_z_pair(muons, electrons, z_mass, margin=MARGIN):
    """Events with >= 3 leptons and a same-flavour opposite-charge pair: the pT and phi of
    the highest-pT lepton outside the pair closest to ``z_mass``, with the event's index.

    Each collection is (offsets, px, py, pt, eta, mass, charge, phi); the leptons are the
    muons, then the electrons, so a muon wins ties.
    """
    (events, out_pt, out_phi), unsure, slots = _search(
        _z_pairs, len(muons[0]) - 1, [np.int64, F32, F32],
        muons, electrons, z_mass, margin, _buffer(muons[0]), _buffer(electrons[0]),
        np.empty(len(muons[0]) - 1, dtype=np.int64),
    )  # fmt: skip
    if len(unsure):
        mu_exact, el_exact = (
            numpy_pz_e_of_events(offsets, pt, eta, mass, unsure)
            for offsets, _, _, pt, eta, mass, _, _ in (muons, electrons)
        )
        _z_pairs_again(unsure, slots, out_pt, out_phi, muons, mu_exact, electrons, el_exact, z_mass)
    return events, out_pt, out_phi


@numba.njit(**UNCOUNTED)
def _z_pairs(muons, electrons, z_mass, margin, mu_buf, el_buf, three, events, out_pt,
             out_phi, unsure, slots):  # fmt: skip
    """:func:`lead_outside_z_pair` with fast pz and E, and the events it is unsure of with
    their rows in the output. The events with three leptons are listed first, branch-free,
    into ``three``, as in :func:`_pairs_in_window`."""
    mu_off, mu_px, mu_py, mu_pt, mu_eta, mu_mass, mu_q, mu_phi = muons
    el_off, el_px, el_py, el_pt, el_eta, el_mass, el_q, el_phi = electrons
    n_three = 0
    for ev in range(len(mu_off) - 1):
        three[n_three] = ev
        n_three += mu_off[ev + 1] - mu_off[ev] + el_off[ev + 1] - el_off[ev] >= 3
    kept = n_unsure = 0
    for ev in three[:n_three]:
        mu_lo, mu_hi, el_lo, el_hi = mu_off[ev], mu_off[ev + 1], el_off[ev], el_off[ev + 1]
        n_mu = _z_load(mu_buf, mu_lo, mu_hi, mu_px, mu_py, mu_pt, mu_eta, mu_mass, mu_q)
        n_el = _z_load(el_buf, el_lo, el_hi, el_px, el_py, el_pt, el_eta, el_mass, el_q)
        if n_mu == 0 and n_el == 0:
            continue
        mu_a, mu_b, el_a, el_b, doubt = _z_closest(
            mu_buf, mu_q, mu_lo, n_mu, el_buf, el_q, el_lo, n_el, z_mass, margin
        )
        events[kept] = ev
        out_pt[kept], out_phi[kept] = _lead(
            mu_lo, mu_hi, mu_pt, mu_phi, mu_a, mu_b, el_lo, el_hi, el_pt, el_phi, el_a, el_b
        )
        if doubt:
            unsure[n_unsure], slots[n_unsure] = ev, kept
            n_unsure += 1
        kept += 1
    return kept, n_unsure


@numba.njit(cache=True)
def _z_pairs_again(events, slots, out_pt, out_phi, muons, mu_exact, electrons, el_exact, z_mass):
    """The pair ``ak.argmin`` picks in each of ``events``, with the pz and E given (packed,
    per collection): the first two leptons unless a same-flavour opposite-charge pair is
    strictly closer (a NaN distance is not; a NaN first stays); then the leading lepton
    outside it, at the event's row of the output."""
    mu_off, mu_px, mu_py, mu_pt, _, _, mu_q, mu_phi = muons
    el_off, el_px, el_py, el_pt, _, _, el_q, el_phi = electrons
    (mu_starts, mu_pz, mu_e), (el_starts, el_pz, el_e) = mu_exact, el_exact
    mu_buf, el_buf = _buffer(mu_starts), _buffer(el_starts)
    for k in range(len(events)):
        ev = events[k]
        mu_lo, mu_hi, el_lo, el_hi = mu_off[ev], mu_off[ev + 1], el_off[ev], el_off[ev + 1]
        n_mu = _z_load_given(mu_buf, mu_lo, mu_hi, mu_px, mu_py, mu_q, mu_pz, mu_e, mu_starts[k])
        n_el = _z_load_given(el_buf, el_lo, el_hi, el_px, el_py, el_q, el_pz, el_e, el_starts[k])
        first = _first_pair(mu_buf, mu_q, mu_lo, mu_hi - mu_lo, el_buf, el_q, el_lo)
        mu_a, mu_b, el_a, el_b, _ = _z_closest(
            mu_buf, mu_q, mu_lo, n_mu, el_buf, el_q, el_lo, n_el, z_mass, F32(0)
        )
        if first[4] or (mu_a < 0 and el_a < 0):
            mu_a, mu_b, el_a, el_b = first[:4]
        out_pt[slots[k]], out_phi[slots[k]] = _lead(
            mu_lo, mu_hi, mu_pt, mu_phi, mu_a, mu_b, el_lo, el_hi, el_pt, el_phi, el_a, el_b
        )
