"""The README's shell commands work as written: each line of its ``sh`` blocks either runs here,
in README order, in a fresh directory and on small data, or is set aside below with the
reason, so a new or changed command cannot drift unnoticed.

What "as written" allows: dataset sizes are made small (``--files``, ``--events-per-file``,
``--total-gb``); a scheduler address is that of a real scheduler started for the test; the
sample data ``make run`` makes is generated small beforehand. PATH starts without
``.venv/bin``, so ``facility`` is found only the way the README says.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from distributed import Client

from analysis_kernels.executor.processes import free_port, stop_in_reverse
from analysis_kernels.generate import DatasetSpec, generate_dataset

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = str(ROOT / ".venv" / "bin")

# Commands that need what this test cannot give, by their start.
SET_ASIDE = {
    "make run": "the interactive facility; tests/test_hub_local.py runs its command",
    "make test": "the test suite itself",
    "cat > site.yaml": "a site's values for a Kubernetes install (make kind-smoke)",
    "make upgrade": "needs a Kubernetes cluster (make kind-smoke, tests/cluster)",
    "helm test": "needs a Kubernetes cluster (make kind-smoke, tests/cluster)",
    "helm dependency build": "needs the charts' repositories, out of this machine's reach",
    "make images && .venv/bin/pytest tests/e2e": "the e2e tests, which make test runs",
}
# Commands set aside by what they contain.
SET_ASIDE_CONTAINING = {
    "-e kube:": "needs the dask operator on a cluster (tests/cluster/test_dask_operator.py)",
    "my_analysis.py": "the reader's own analysis file; tests/test_user_analysis.py covers it",
    "my_package.": "the reader's own package; tests/test_user_analysis.py covers it",
    "charts/analysis-facility/charts": "brings in z2jh's chart from a clone of its repository, "
    "out of reach here; tests/test_chart.py checks the copy with a packaged stand-in",
}
SMALL = {"--files": "2", "--events-per-file": "20000", "--total-gb": "0.01"}
SAMPLE_EVENTS = 20_000


def readme_commands() -> list[str]:
    """Each command of the README's ``sh`` blocks: continued lines joined, a here-document
    kept with the line that opens it, comments and blank lines left out."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S):
        lines = iter(block.splitlines())
        for line in lines:
            while line.endswith("\\"):
                line = line[:-1] + " " + next(lines).strip()
            heredoc = re.search(r"<<'?(\w+)'?", line)
            if heredoc:
                body = []
                for more in lines:
                    body.append(more)
                    if more == heredoc.group(1):
                        break
                line = "\n".join([line, *body])
            command = line if heredoc else line.split("  #")[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def set_aside(command: str) -> str | None:
    for start, reason in SET_ASIDE.items():
        if command.startswith(start):
            return reason
    for part, reason in SET_ASIDE_CONTAINING.items():
        if part in command:
            return reason
    return None


def small(command: str, scheduler: str) -> str:
    words = shlex.split(command)
    if words[:2] == ["facility", "generate"]:
        for i, word in enumerate(words[:-1]):
            if word in SMALL:
                words[i + 1] = SMALL[word]
        if not {"--events-per-file", "--total-gb"} & set(words):
            words += ["--events-per-file", SMALL["--events-per-file"]]
        words.append("--no-progress")
        command = shlex.join(words)
    return command.replace("tcp://127.0.0.1:8786", scheduler)


def environment_after(command: str, env: dict, cwd: Path) -> dict:
    """The environment a ``source ...`` line leaves in the shell."""
    out = subprocess.run(
        ["bash", "-c", f"{command} && env -0"], env=env, cwd=cwd, capture_output=True, check=True
    ).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def test_every_readme_command_is_run_or_set_aside_with_a_reason():
    unknown = [
        c
        for c in readme_commands()
        if not set_aside(c) and not re.match(r"(source \.venv/bin/activate|facility )", c)
    ]
    assert not unknown, (
        "README commands this test neither runs nor sets aside; make them runnable here or "
        f"add them to SET_ASIDE in {Path(__file__).name} with the reason: {unknown}"
    )


@pytest.fixture
def scheduler(tmp_path):
    """A ``dask scheduler`` and one ``dask worker`` started in the directory the commands run
    in, as a reader would start them, so relative paths mean the same to the workers."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"cwd": tmp_path, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port)]
    worker = ["distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads", "1"]
    processes = [
        subprocess.Popen([sys.executable, "-m", *command, "--no-dashboard"], **quiet)
        for command in (scheduler, worker)
    ]
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        stop_in_reverse(processes, timeout=30)


def test_readme_commands_work_as_written(tmp_path, scheduler):
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    for name in ("ds", "stop", "dt"):  # what make run generates, smaller
        spec = DatasetSpec(name, files=1, events_per_file=SAMPLE_EVENTS, seed=3)
        generate_dataset(spec, tmp_path / "data" / "sample" / name, progress=False)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p != VENV_BIN]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(path)
    ran = []
    for command in readme_commands():
        if set_aside(command):
            continue
        if command.startswith("source "):
            env = environment_after(command, env, tmp_path)
            continue
        line = small(command, scheduler)
        result = subprocess.run(
            ["bash", "-c", line], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{command}\n(ran as: {line})\n{result.stderr[-3000:]}"
        ran.append(command)
    assert any(c.startswith("facility generate") for c in ran)
    assert any(c.startswith("facility analyze") for c in ran)
    assert (tmp_path / "output" / "ds").is_dir()  # --plots output/ds
    assert (tmp_path / "output" / "ds-selected.root").is_file()  # --gather
