"""What a run returns: merged histograms, the summary, and the accounting of every event."""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class Report:
    analysis: str
    executor: str
    params: dict[str, Any]
    output: dict[str, Any]
    events_total: int
    events_processed: int
    events_per_file: dict[str, dict[str, int]]
    failed_chunks: list[dict] = field(default_factory=list)
    unreadable_files: list[dict] = field(default_factory=list)
    wall_time: float = 0.0
    cpu_time: float = 0.0
    bytes_read: int = 0
    chunks: int = 0
    harvest_manifest: list[dict] | None = None
    columns_read: list[str] = field(default_factory=list)
    summarize: Callable[[dict, dict], Any] | None = field(default=None, repr=False)

    @functools.cached_property
    def summary(self) -> dict[str, Any]:
        """The analysis' own summary (fits, efficiencies; a user's ``postprocess``), computed
        when first asked for."""
        if not self.output or self.summarize is None:
            return {}
        return self.summarize(self.output, self.params)

    @property
    def events_failed(self) -> int:
        return sum(c["events"] for c in self.failed_chunks)

    @property
    def complete(self) -> bool:
        """Every event of every file was processed."""
        return not self.failed_chunks and not self.unreadable_files

    def to_dict(self) -> dict:
        """Everything but the histograms, as JSON-ready data."""
        skip = ("output", "summarize")
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        data["summary"] = self.summary
        data["events_failed"] = self.events_failed
        return data

    def save(self, directory: str | Path) -> tuple[Path, Path]:
        """``report.json`` (numbers) and ``histograms.pkl`` (the merged hist objects)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.json").write_text(json.dumps(self.to_dict(), indent=1, default=str))
        (directory / "histograms.pkl").write_bytes(pickle.dumps(self.output))
        return directory / "report.json", directory / "histograms.pkl"
