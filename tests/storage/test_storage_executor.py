"""The executor on grid storage from real Dask worker processes, each finding the token itself;
harvesting to the user's area; a token refreshed while a run reads; a file gone mid-run."""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path

import awkward as ak
import jwt
import pytest

from analysis_kernels import run
from analysis_kernels.errors import InputError
from analysis_kernels.executor import HarvestSpec, gather
from analysis_kernels.executor.processes import DaskProcesses
from hub_config.local.storage import TOKEN_DECISION_SECONDS
from tests.outputs import same_output
from tests.storage.conftest import as_user, start_grid, write_token
from tests.storage.test_storage_access import _https, _xrdcp
from tests.storage.tokens import refresh

DS_0 = "/store/cms/ds/ds_0000.root"


@pytest.fixture(scope="module")
def alice(grid) -> str:
    return grid.token("alice")["access_token"]


@pytest.mark.slow
def test_localcluster_and_worker_processes_read_as_alice(grid, alice, datasets, tmp_path):
    """Workers started as the user's are (BEARER_TOKEN_FILE and the CA in their environment)."""
    local = run("ds", datasets["ds"], chunk_size=20_000)
    inputs = [
        grid.storage.url("/store/cms/ds"),
        grid.storage.url("/store/cms/ds/ds_0000.root", "https"),
    ]
    with as_user(grid, tmp_path / "token", alice):
        on_cluster = run("ds", inputs[0], executor="local:2", chunk_size=20_000)
        with DaskProcesses(n_workers=2) as workers:
            on_processes = run("ds", inputs, executor=workers.scheduler_address, chunk_size=20_000)
    assert on_cluster.complete and on_cluster.events_processed == local.events_total
    same_output(on_cluster.output, local.output)
    files = sorted(datasets["ds"].glob("*.root"))
    again = run("ds", [*files, files[0]], chunk_size=20_000)  # the same files, locally
    assert on_processes.complete and on_processes.events_processed == 180_000
    same_output(on_processes.output, again.output)


def _selected(events):
    """A user's analysis that harvests its selected events."""
    two = events[events.nMuon >= 2]
    return {"n": len(two)}, two[["nMuon", "Muon_pt"]]


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["root", "https"])
def test_alice_harvests_to_her_area_and_not_to_bobs(grid, alice, tmp_path, scheme):
    s = grid.storage
    destination = s.url(f"/store/user/alice/harvest-{scheme}", scheme)
    with as_user(grid, tmp_path / "token", alice):
        report = run(
            _selected,
            s.url("/store/cms/ds/ds_0000.root", scheme),
            executor="local:2",
            chunk_size=20_000,
            harvest=HarvestSpec(destination, format="root"),
        )
        gathered = gather(report.harvest_manifest, f"{destination}/all.parquet")
        with pytest.raises(InputError) as refused:
            run(
                _selected,
                s.url("/store/cms/ds/ds_0000.root", scheme),
                chunk_size=60_000,
                harvest=HarvestSpec(s.url("/store/user/bob/stolen", scheme)),
            )
    assert gathered == f"{destination}/all.parquet"
    area = s.data / "store" / "user" / "alice" / f"harvest-{scheme}"
    assert len(ak.from_parquet(area / "all.parquet")) == report.output["n"] > 0
    assert sorted(p.name for p in area.glob("*.root")) == sorted(
        Path(e["path"]).name for e in report.harvest_manifest if e["path"]
    )
    assert "permission denied for writing /store/user/bob/stolen" in str(refused.value)
    assert "the token of alice" in str(refused.value)
    assert not (s.data / "store" / "user" / "bob" / "stolen").exists()


def _slow_count(events):
    """Slow enough that the run outlives the first token."""
    time.sleep(1.5)
    return {"events": len(events)}


@pytest.mark.slow
def test_a_token_refreshed_mid_run_keeps_the_run_going(grid, datasets, tmp_path):
    """Tokens live 10 s; the file is rewritten every 3 s as the hub does; the run lasts past the
    first token's expiry on worker processes, over both protocols, and loses nothing. Then the
    first token is refused: by the facility's client, and by the storage (over https:// up to
    a minute late: XRootD's defect, see hub_config.local.storage)."""
    with start_grid(datasets, access_token_ttl=10, ca=grid.facility.ca) as grid:
        first = grid.token("alice")
        expiry = jwt.decode(first["access_token"], options={"verify_signature": False})["exp"]
        token_file = tmp_path / "token"
        stop = threading.Event()

        def keep_fresh():
            while not stop.wait(3):
                write_token(
                    token_file, refresh(grid.facility, first["refresh_token"])["access_token"]
                )

        s = grid.storage
        inputs = [s.url(DS_0), s.url("/store/cms/ds/ds_0001.root", "https")]
        # The storage accepts the first token while it is valid (and so remembers it): whether
        # the run itself presents it before the refresh depends on how fast the workers start.
        copy = _xrdcp(grid, first["access_token"], inputs[0], str(tmp_path / "ok.root"))
        assert copy.returncode == 0, copy.stderr
        assert _https(grid, "GET", DS_0, first["access_token"]).status_code == 200
        refresher = threading.Thread(target=keep_fresh)
        refresher.start()  # before the workers: they take longer to start than a token lives
        try:
            with (
                as_user(grid, token_file, first["access_token"]),
                DaskProcesses(n_workers=2) as workers,
            ):
                report = run(
                    _slow_count, inputs, executor=workers.scheduler_address, chunk_size=5_000
                )
        finally:
            stop.set()
            refresher.join()
        finished = time.time()
        assert finished > expiry + 5, "the run ended before the first token expired"
        assert report.complete and report.output["events"] == report.events_total == 120_000
        stale = datetime.datetime.fromtimestamp(expiry, datetime.UTC)
        with (
            as_user(grid, tmp_path / "old", first["access_token"]),
            pytest.raises(InputError) as refused,
        ):
            run("ds", inputs[0])
        assert f"expired at {stale:%Y-%m-%d %H:%M:%S} UTC" in str(refused.value)
        # The first token, expired, is refused by the storage itself: over root:// at once,
        # over https:// once the scitokens plugin's decision on it, taken while it was valid,
        # lapses, up to a minute past its expiry (hub_config.local.storage says why).
        copy = _xrdcp(grid, first["access_token"], inputs[0], str(tmp_path / "x.root"))
        assert copy.returncode != 0 and "Auth failed" in copy.stderr, copy.stderr
        assert _https_status_once_lapsed(grid, first["access_token"], expiry) in (401, 403)


def _https_status_once_lapsed(grid, token: str, expiry: float) -> int:
    """The storage's answer over https:// to ``token``, asked until it refuses or until the
    plugin's decision taken before ``expiry`` must have lapsed (2 s for its rounding)."""
    while True:
        status = _https(grid, "GET", DS_0, token).status_code
        if status != 200 or time.time() > expiry + TOKEN_DECISION_SECONDS + 2:
            return status
        time.sleep(1)


def _delete_other(gone: Path):
    def analysis(events):
        gone.unlink(missing_ok=True)
        return {"events": len(events)}

    return analysis


@pytest.mark.slow
def test_a_file_gone_mid_run_is_named_and_accounted(grid, alice, datasets, tmp_path):
    """The first chunk processed deletes the other file on the storage: its chunks fail on
    the worker that opens it afterwards, named, and processed + failed = total.

    Over https:// (XrdHttp opens the file for each request). Over root:// the planning
    client's open handle keeps it: xrootd shares one handle per path among its clients, so
    the worker's later open of the deleted file succeeds and reads it whole (seen here).
    """
    for name in ("ds_0000.root", "ds_0001.root"):
        grid.storage.publish(datasets["ds"] / name, f"/store/cms/gone/{name}")
    gone = grid.storage.data / "store" / "cms" / "gone" / "ds_0001.root"
    inputs = [grid.storage.url(f"/store/cms/gone/ds_000{i}.root", "https") for i in range(2)]
    with as_user(grid, tmp_path / "token", alice):
        report = run(
            _delete_other(gone), inputs, executor="local:1", chunk_size=20_000, skip_bad=True
        )
    assert not gone.exists()
    assert report.events_processed + report.events_failed == report.events_total == 120_000
    assert report.events_failed > 0 and not report.complete
    for failed in report.failed_chunks:
        assert failed["file"] == inputs[1] and "file not found on the storage" in failed["error"]
