"""Reading one chunk for a user's analysis: only the columns its code touches.

Without declared columns the chunk is read lazily (uproot's virtual arrays, TTree or RNTuple):
a branch is read when the code first uses it, and the access log names the columns read. With
the column cache, a column read before comes from worker memory and is logged the same way.
Declared columns are read up front, exactly those, and a file that lacks one is refused by
name.
"""

from __future__ import annotations

import awkward as ak

from analysis_kernels.errors import InputError
from analysis_kernels.executor import cache as column_cache
from analysis_kernels.schema import basket_bytes, read_arrays


def is_ttree(source) -> bool:
    return hasattr(source, "branches")


def names(source) -> list[str]:
    """Top-level columns: TTree branches or RNTuple fields."""
    return list(source.keys(recursive=False))


def storage_bytes(source, columns, entry_start: int, entry_stop: int) -> int:
    """Compressed bytes of the TTree baskets behind ``columns`` (RNTuple pages are not counted)."""
    if not is_ttree(source):
        return 0
    return sum(basket_bytes(source[c], entry_start, entry_stop) for c in columns)


def _logged(array: ak.Array, column: str, hits: set[str]) -> ak.Array:
    """``array`` (already in memory) behind virtual buffers that note ``column`` when used."""
    form, length, buffers = ak.to_buffers(array)

    def getter(buffer):
        def get():
            hits.add(column)
            return buffer

        return get

    return ak.from_buffers(form, length, {k: getter(v) for k, v in buffers.items()})


class LazyChunk:
    """The events of one chunk, read as the code touches them; ``touched`` names the columns."""

    def __init__(self, source, path: str, entry_start: int, entry_stop: int, cache: bool):
        self.source, self.path, self.cache = source, path, cache
        self.start, self.stop = entry_start, entry_stop
        self._log: list = []
        self._hits: set[str] = set()
        all_names = names(source)
        cached = {}
        if cache:
            for name in all_names:
                array = column_cache.get(self._key(name))
                if array is not None:
                    cached[name] = _logged(array, name, self._hits)
        self._fresh = source.arrays(
            filter_name=lambda name: name not in cached,
            entry_start=entry_start,
            entry_stop=entry_stop,
            virtual=True,
            access_log=self._log,
        )
        if cached:
            fields = {n: cached[n] if n in cached else self._fresh[n] for n in all_names}
            self.events = ak.Array(fields)
        else:
            self.events = self._fresh

    def _key(self, name: str) -> tuple:
        return column_cache.key(self.path, self.start, self.stop, (name,))

    @property
    def read(self) -> set[str]:
        """Columns read from storage."""
        return logged_names(self._log, self.source)

    @property
    def touched(self) -> set[str]:
        return self.read | self._hits

    def keep(self) -> None:
        """Put the columns read from storage into the worker's cache."""
        for name in self.read:
            column_cache.put(self._key(name), ak.materialize(self._fresh[name]))


def read_columns(source, path: str, columns, entry_start: int, entry_stop: int) -> ak.Array:
    """Exactly ``columns``, read now; a missing column or a damaged basket is bad input."""
    present = set(names(source))
    missing = [c for c in columns if c not in present]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", file=path)
    return read_arrays(source, path, entry_start, entry_stop, filter_name=list(columns))


def nanoevents(path: str, tree: str, entry_start: int, entry_stop: int, log: list) -> ak.Array:
    """coffea NanoEvents (NanoAOD collections by prefix, ``events.Muon.pt``), read lazily."""
    try:
        from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
    except ImportError as err:
        raise RuntimeError(
            "schema 'nanoaod' needs coffea: pip install 'analysis-facility[bench]'"
        ) from err
    return NanoEventsFactory.from_root(
        {path: tree},
        entry_start=entry_start,
        entry_stop=entry_stop,
        schemaclass=NanoAODSchema,
        mode="virtual",
        access_log=log,
    ).events()


def logged_names(log: list, source) -> set[str]:
    """Top-level columns in an access log: TTree branches, or the RNTuple fields that hold the
    columns read (a vector's values are a subfield ``_0`` of the vector field)."""
    out = set()
    for access in log:
        if hasattr(access, "branch"):
            out.add(access.branch)
            continue
        records, field = source.field_records, access.field_id
        while records[field].parent_field_id != field:
            field = records[field].parent_field_id
        out.add(records[field].field_name)
    return out
