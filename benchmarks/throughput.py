"""Study 4: events/s and MB/s per core for every analysis x system x codec, with ratios.

Systems, one core each, on the same files in the same run: ours (serial), ROOT RDataFrame
(the same analysis written as the seed notebooks do), coffea (ADL queries), and the I/O
floor (uproot reading exactly the declared branches). Repeated; the minimum is kept.
"""

from __future__ import annotations

from pathlib import Path

from analysis_kernels import get_analysis, run
from analysis_kernels.executor.chunks import expand_inputs
from benchmarks.common import branch_bytes, dataset, io_floor, save, timed

SEED_ANALYSES = {"ds": {}, "stop": {"n_variations": 20}, "dt": {}}
ADL_QUERIES = [f"q{i}" for i in range(1, 9)]


def _systems(analysis: str, files: list[str], params: dict) -> dict:
    from benchmarks.peers import coffea_adl, rdf

    systems = {
        "io-floor": lambda: io_floor(analysis, files, params),
        "ours": lambda: run(analysis, files, params=params),
    }
    if analysis.startswith("adl_"):
        query = analysis.split("_")[1]
        systems["rdataframe"] = lambda: rdf.adl(query, files)
        systems["coffea"] = lambda: coffea_adl.adl(query, files)
    elif analysis == "stop":
        systems["rdataframe"] = lambda: rdf.stop(files, params["n_variations"])
    else:
        systems["rdataframe"] = lambda: getattr(rdf, analysis)(files)
    return systems


def measure(data_root: Path, codecs: list[str], events: int, adl_events: int, repeat: int) -> dict:
    rows = []
    for codec in codecs:
        work = [(name, params, events) for name, params in SEED_ANALYSES.items()]
        work += [(f"adl_{q}", {}, adl_events) for q in ADL_QUERIES]
        for analysis, params, n in work:
            generator = get_analysis(analysis).generator
            files = expand_inputs(dataset(generator, data_root, 1, n, codec))
            cbytes, ubytes = (
                branch_bytes(analysis, files, kind) for kind in ("compressed", "uncompressed")
            )
            times = {
                system: timed(fn, repeat)
                for system, fn in _systems(analysis, files, params).items()
            }
            for system, t in times.items():
                rows.append(
                    {
                        "analysis": analysis,
                        "codec": codec,
                        "system": system,
                        "events": n,
                        "wall_min_s": t["min"],
                        "wall_median_s": t["median"],
                        "events_per_s_per_core": n / t["min"],
                        "compressed_MB_per_s_per_core": cbytes / 1e6 / t["min"],
                        "uncompressed_MB_per_s_per_core": ubytes / 1e6 / t["min"],
                        "ratio_to_io_floor": t["min"] / times["io-floor"]["min"],
                        "speedup_vs_rdataframe": times["rdataframe"]["min"] / t["min"],
                    }
                )
                print(
                    f"  {codec:4s} {analysis:7s} {system:10s} {n / t['min'] / 1e6:7.3f} Mev/s"
                    f"  x{t['min'] / times['io-floor']['min']:5.2f} floor"
                    f"  {times['rdataframe']['min'] / t['min']:5.2f}x RDF"
                )
    result = {"rows": rows, "events": events, "adl_events": adl_events, "repeat": repeat}
    save("throughput", result)
    return result
