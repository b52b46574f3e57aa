"""Study 6: many physicists arriving at once. N users log in through the development IAM and
start servers at the same moment on the local facility; time to a ready server per user, and
the CPU the hub, its proxy and the IAM spent on it."""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import yaml

from benchmarks.common import percentile, save
from hub_config.local.client import HubUser
from hub_config.local.facility import LocalFacility


def _arrive(hub_url: str, name: str) -> dict:
    started = time.perf_counter()
    user = HubUser(hub_url, name, f"{name}-pw").login()
    logged_in = time.perf_counter()
    user.new_token()
    user.start_server(profile="small", timeout=600)
    return {
        "login_s": logged_in - started,
        "ready_s": time.perf_counter() - started,
        "user": user,
    }


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of a process and its children that are not users' servers."""
    counted = [process] + [
        child
        for child in process.children(recursive=True)
        if "singleuser" not in " ".join(child.cmdline())
    ]
    return sum(sum(p.cpu_times()[:2]) for p in counted)  # user + system


def measure(users: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        names = [f"physicist{i:03d}" for i in range(users)]
        users_file = Path(tmp) / "users.yaml"
        users_file.write_text(
            yaml.safe_dump(
                {
                    "users": [
                        {"username": n, "password": f"{n}-pw", "groups": ["cms"]} for n in names
                    ]
                }
            )
        )
        state = Path(tmp) / "state"
        with LocalFacility(state, users_file=users_file, log_dir=state / "logs") as facility:
            hub, idp = (psutil.Process(p.pid) for p in reversed(facility.processes))
            hub_cpu, idp_cpu = _cpu(hub), _cpu(idp)
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=users) as pool:
                arrivals = list(pool.map(lambda n: _arrive(facility.url, n), names))
                wall = time.perf_counter() - started
                hub_cpu, idp_cpu = _cpu(hub) - hub_cpu, _cpu(idp) - idp_cpu
                list(pool.map(lambda arrival: arrival.pop("user").stop_server(), arrivals))
    ready = [a["ready_s"] for a in arrivals]
    login = [a["login_s"] for a in arrivals]
    result = {
        "users": users,
        "wall_s": wall,
        "ready_p50_s": statistics.median(ready),
        "ready_p95_s": percentile(ready, 95),
        "login_p50_s": statistics.median(login),
        "login_p95_s": percentile(login, 95),
        "hub_and_proxy_cpu_s": hub_cpu,
        "hub_and_proxy_cpu_share": hub_cpu / wall,
        "idp_cpu_s": idp_cpu,
        "ready_s": ready,
    }
    print(
        f"  {users} users: ready p50 {result['ready_p50_s']:.1f}s p95 {result['ready_p95_s']:.1f}s;"
        f" login p50 {result['login_p50_s']:.2f}s p95 {result['login_p95_s']:.2f}s;"
        f" hub+proxy CPU {hub_cpu:.1f}s ({100 * result['hub_and_proxy_cpu_share']:.0f}% of one core)"
    )
    save("hub_concurrency", result)
    return result
