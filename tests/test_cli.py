"""The ``facility`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FACILITY = [str(Path(sys.executable).with_name("facility"))]


def _run(*args, check=True):
    return subprocess.run([*FACILITY, *args], capture_output=True, text=True, check=check)


def test_help_explains_every_option():
    for command, options in {
        "generate": [
            "--output",
            "--files",
            "--events-per-file",
            "--total-gb",
            "--codec",
            "--level",
            "--seed",
            "--workers",
        ],
        "analyze": [
            "--executor",
            "--chunk-size",
            "--param",
            "--skip-bad",
            "--harvest",
            "--harvest-format",
            "--harvest-columns",
            "--gather",
            "--plots",
            "--report",
            "--json",
        ],
    }.items():
        text = _run(command, "--help").stdout
        for option in options:
            line = next(line for line in text.splitlines() if line.strip().startswith(option))
            assert len(line.split(option, 1)[1].strip()) > 0 or option in text, option


def test_generate_analyze_plots_and_report(tmp_path):
    data = tmp_path / "stop"
    out = _run(
        "generate",
        "stop",
        "-o",
        str(data),
        "--files",
        "1",
        "--events-per-file",
        "4000",
        "--no-progress",
    )
    assert "wrote 1 file(s), 4000 events" in out.stdout
    res = _run(
        "analyze",
        "stop",
        str(data),
        "-p",
        "n_variations=12",
        "--plots",
        str(tmp_path / "plots"),
        "--report",
        str(tmp_path / "report"),
        "--no-progress",
    )
    assert "4000 processed of 4000" in res.stdout and "12 variation(s)" in res.stdout
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "stop_mll.png",
        "stop_mt2.png",
        "stop_yields.png",
    ]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["params"] == {"n_variations": 12} and report["events_failed"] == 0


def test_bad_input_exits_with_a_clear_message(tmp_path):
    (tmp_path / "junk.root").write_text("junk")
    res = _run("analyze", "ds", str(tmp_path / "junk.root"), "--no-progress", check=False)
    assert res.returncode == 2
    assert "junk.root: not a readable ROOT file" in res.stderr
    res = _run(
        "analyze", "ds", str(tmp_path / "junk.root"), "--skip-bad", "--no-progress", check=False
    )
    assert res.returncode == 3 and "UNREADABLE" in res.stdout
    res = _run("analyze", "ds", str(tmp_path), "-p", "n_variations=3", check=False)
    assert res.returncode == 2 and "has no parameter(s) n_variations" in res.stderr
