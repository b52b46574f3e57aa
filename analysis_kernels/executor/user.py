"""A physicist's own analysis, run by the executor with the guarantees of the built-in ones.

The executor takes a function ``events -> output``, an object with ``process`` (and optionally
``postprocess``), or an unchanged coffea ``ProcessorABC``. It travels to the workers by value
(cloudpickle), so code defined in a notebook cell, in ``__main__``, in a file given on the
command line or in a module the workers lack runs there all the same. An exception in the
user's code comes back with its traceback and the chunk it failed on; it is a bug, never bad
input, so ``skip_bad`` does not skip it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
import sysconfig
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import cloudpickle

SCHEMAS = ("flat", "nanoaod")
"""``flat``: an awkward record of the tree's branches (``events.Muon_pt``); ``nanoaod``:
coffea NanoEvents with NanoAOD collections (``events.Muon.pt``)."""

# Packages every worker image has; everything else the user's code comes from is sent by value.
_SHIPPED = ("analysis_kernels", "hub_config")
_EXECUTOR = str(Path(__file__).parent)


@dataclass(frozen=True)
class UserAnalysis:
    name: str
    code: bytes  # the user's function or processor, cloudpickled by value
    columns: tuple[str, ...] | None = None  # declared; None: read lazily what the code touches
    schema: str = "flat"

    def load(self):
        return _loads(self.code)


class AnalysisCodeError(RuntimeError):
    """The user's analysis raised on a chunk: its traceback, file and entry range."""

    def __init__(self, message: str, file: str, entry_start: int, entry_stop: int):
        super().__init__(message)
        self.file = file
        self.entry_start = entry_start
        self.entry_stop = entry_stop

    def __reduce__(self):
        # Keep the chunk when the error crosses a Dask process boundary.
        return (type(self), (self.args[0], self.file, self.entry_start, self.entry_stop))


def user_analysis(
    code: Any, columns: Sequence[str] | None = None, schema: str = "flat"
) -> UserAnalysis:
    """Wrap a function or processor for the executor; its code is pickled here, by value.

    A processor class (as named on the command line) is instantiated without arguments.
    """
    if isinstance(code, type) and hasattr(code, "process"):
        code = code()
    if not (hasattr(code, "process") or callable(code)):
        raise TypeError(
            f"an analysis is a registered name, a function of the events, or an object with a "
            f"process method; got {type(code).__name__}"
        )
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; choose one of {', '.join(SCHEMAS)}")
    if isinstance(columns, str):
        columns = columns.split(",")
    name = getattr(code, "__name__", None) or type(code).__name__
    return UserAnalysis(name, _dumps(code), tuple(columns) if columns else None, schema)


def load_analysis(reference: str) -> Any:
    """``path/to/file.py:NAME`` or ``package.module:NAME``: the object it names."""
    where, sep, name = reference.rpartition(":")
    if not sep or not where or not name:
        raise ValueError(f"{reference!r}: name an analysis as path/to/file.py:NAME or module:NAME")
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise ValueError(f"{reference!r}: no file {path}")
        module_name = f"user_analysis_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # cloudpickle sends by value only modules it can find
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValueError(f"{reference!r}: {where} defines no {name!r}") from None


def call(code: Any, events: ak.Array, params: Mapping[str, Any]) -> tuple[dict, ak.Array | None]:
    """Run the user's code on one chunk: its output, and the events it selected to harvest."""
    process = code.process if hasattr(code, "process") else code
    result = process(events, **params)
    selected = None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], ak.Array | None):
        result, selected = result
    if not isinstance(result, Mapping):
        raise TypeError(
            f"the analysis returned {type(result).__name__}; return a dict of histograms and "
            "numbers (they merge by addition), optionally with the selected events: (dict, events)"
        )
    return dict(result), selected


def summarize(code: Any, output: dict, params: Mapping[str, Any] | None = None) -> Any:
    """The user's ``postprocess`` of the merged output, when the code has one."""
    if not hasattr(code, "postprocess"):
        return {}
    summary = code.postprocess(output)
    return {} if summary is None else summary


def code_error(name: str, chunk, err: BaseException) -> AnalysisCodeError:
    """The user's exception, with the user's frames and the chunk, for the client."""
    tb = err.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_EXECUTOR):
        tb = tb.tb_next
    frames = "".join(traceback.format_exception(type(err), err, tb or err.__traceback__))
    return AnalysisCodeError(
        f"analysis {name!r} raised {type(err).__name__}: {err}\n"
        f"  on {chunk.file} entries [{chunk.entry_start}, {chunk.entry_stop})\n\n{frames}",
        chunk.file,
        chunk.entry_start,
        chunk.entry_stop,
    )


def _dumps(code: Any) -> bytes:
    """Pickle by value the code of every module that is not installed (workers may lack it)."""
    paths = sysconfig.get_paths()
    installed = tuple({paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})
    own = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name == "__main__" or not file or name.split(".")[0] in _SHIPPED:
            continue
        if file.startswith(installed):
            continue
        cloudpickle.register_pickle_by_value(module)
        own.append(module)
    try:
        return cloudpickle.dumps(code)
    finally:
        for module in own:
            cloudpickle.unregister_pickle_by_value(module)


@functools.lru_cache(maxsize=8)
def _loads(code: bytes):
    return cloudpickle.loads(code)
