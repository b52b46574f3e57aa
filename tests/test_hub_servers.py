"""Users' servers on the local facility: notebooks, Dask, tokens as files, isolation."""

from __future__ import annotations

import ast

import jwt
import psutil
import pytest
import requests

from analysis_kernels.executor import run
from hub_config.local.client import HubUser
from tests.cluster.cluster_api import wait_for

pytestmark = pytest.mark.slow

RUN_EXAMPLE = """
import ast, nbformat
from nbclient import NotebookClient
nb = nbformat.read("examples/ds_phipi.ipynb", as_version=4)
mass = "report.output['mass']"
nb.cells.append(nbformat.v4.new_code_cell(
    f"print({{'entries': int({mass}.sum()), 'counts': {mass}.values().astype(int).tolist()}})"
))
NotebookClient(nb, timeout=600, resources={"metadata": {"path": "examples"}}).execute()
from analysis_kernels.session import _sidebar_api, jupyter_server
result = ast.literal_eval(nb.cells[-1].outputs[-1]["text"])
result["sidebar_clusters"] = len(_sidebar_api(jupyter_server()))  # the one the notebook used
print(result)
"""

READ_TOKENS = """
import os
from distributed import Client
from analysis_kernels.clusters import facility_cluster
path = os.environ["BEARER_TOKEN_FILE"]
with facility_cluster() as cluster, Client(cluster) as client:
    on_workers = set(client.run(lambda: open(os.environ["BEARER_TOKEN_FILE"]).read()).values())
    environments = [dict(os.environ), *client.run(lambda: dict(os.environ)).values()]
print(repr((path, open(path).read(), sorted(on_workers), environments)))
"""


def _server_pid(admin: HubUser, name: str) -> int:
    model = admin.api("GET", f"/users/{requests.utils.quote(name, safe='')}").json()
    return model["servers"][""]["state"]["pid"]


def _environments(pid: int) -> list[dict[str, str]]:
    server = psutil.Process(pid)
    return [p.environ() for p in [server, *server.children(recursive=True)]]


def _auth_state(admin: HubUser, name: str) -> dict:
    reply = admin.api("GET", f"/users/{requests.utils.quote(name, safe='')}")
    reply.raise_for_status()
    return reply.json()["auth_state"] or {}


def test_example_notebook_runs_the_ds_analysis_in_the_users_server(login, datasets):
    alice = login("alice")
    server = alice.start_server(profile="medium")
    output = alice.run_code(server, RUN_EXAMPLE)
    result = ast.literal_eval(output.strip())

    expected = run("ds", [str(datasets["ds"])], executor="serial").output["mass"]
    assert result["counts"] == expected.values().astype(int).tolist()
    assert result["entries"] == int(expected.sum()) > 0
    assert result["sidebar_clusters"] == 1


def _state_the_file_holds(admin: HubUser, name: str, path: str) -> dict:
    """The hub's auth state, once the token file holds its access token.

    The hub saves a refreshed state, then writes the file: a read between the two sees the
    previous token in the file, for a moment.
    """

    def held():
        state = _auth_state(admin, name)
        with open(path) as handle:
            return state if handle.read().strip() == state["access_token"] else None

    return wait_for(held, f"{path} holding the hub's access token", timeout=30, every=0.2)


def test_token_file_holds_the_current_token_in_server_and_workers(login, hub_admin, facility):
    mario = login("mario.rossi@infn.it")
    server = mario.start_server()
    output = mario.run_code(server, READ_TOKENS).strip()
    path, token, on_workers, kernel_and_workers = ast.literal_eval(output)
    assert on_workers == [token]
    signing_key = jwt.PyJWKClient(f"{facility.issuer}/jwk").get_signing_key_from_jwt(token.strip())
    claims = jwt.decode(
        token.strip(), signing_key, algorithms=["RS256"], audience="https://wlcg.cern.ch/jwt/v1/any"
    )
    assert claims["preferred_username"] == "mario.rossi@infn.it"
    assert "/.facility/" in path and "mario-rossi-infn-it" in path

    state = _state_the_file_holds(hub_admin, mario.name, path)
    wait_for(
        lambda: _auth_state(hub_admin, mario.name)["access_token"] != state["access_token"],
        "the hub refreshing the access token",
        timeout=60,
    )
    later = _state_the_file_holds(hub_admin, mario.name, path)
    assert later["access_token"] != state["access_token"]

    secrets = [token.strip(), state["access_token"], later["access_token"]]
    secrets += [state["refresh_token"], state["id_token"]]
    secrets.append(facility.client_secret_file.read_text().strip())
    server_tree = _environments(_server_pid(hub_admin, mario.name))
    assert len(kernel_and_workers) >= 2
    for environment in server_tree + kernel_and_workers:
        for value in environment.values():
            assert not any(secret in value for secret in secrets)


def test_a_user_cannot_reach_another_users_server_or_api(login):
    alice, bob = login("alice"), login("bob")
    alice_server = alice.start_server(profile="medium")
    assert (
        requests.get(f"{alice_server}api/status", headers=alice_headers(alice)).status_code == 200
    )

    bob_at_alice = requests.get(f"{alice_server}api/contents", headers=alice_headers(bob))
    assert bob_at_alice.status_code == 403
    for method, path in [
        ("GET", "/users/alice"),
        ("POST", "/users/alice/server"),
        ("DELETE", "/users/alice/server"),
        ("POST", "/users/alice/tokens"),
    ]:
        assert bob.api(method, path).status_code in (403, 404), (method, path)
    assert alice.api("GET", "/users/alice").status_code == 200


def alice_headers(user: HubUser) -> dict:
    return {"Authorization": f"token {user.token}"}


def test_a_forbidden_profile_is_refused_by_the_hub(login):
    bob = login("bob")
    reply = bob.api("POST", "/users/bob/servers/big", json={"profile": "large"})
    assert reply.status_code == 403
    assert "profile 'large' is not available to you" in reply.json()["message"]


def test_dask_sidebar_makes_a_cluster_whose_dashboard_opens_in_jupyterlab(login):
    alice = login("alice")
    server = alice.start_server(profile="medium")
    headers = alice_headers(alice)
    reply = requests.put(f"{server}dask/clusters", headers=headers, json={}, timeout=120)
    reply.raise_for_status()
    cluster = reply.json()
    try:
        assert cluster["workers"] == 2  # the medium profile's 2 CPUs
        dashboard = requests.get(
            f"{alice.hub_url}{cluster['dashboard_link']}", headers=headers, timeout=60
        )
        assert dashboard.status_code == 200 and "Dask" in dashboard.text
        assert cluster["dashboard_link"].startswith("/user/alice/proxy/")
    finally:
        requests.delete(f"{server}dask/clusters/{cluster['id']}", headers=headers, timeout=60)


def test_revoked_refresh_token_logs_the_user_out(login, hub_admin, facility):
    bob = login("bob")
    server = bob.start_server()
    token_file = (server, _auth_state(hub_admin, "bob"))
    state = token_file[1]
    revoked = requests.post(
        f"{facility.issuer}/revoke",
        auth=("facility-hub", facility.client_secret_file.read_text().strip()),
        data={"token": state["refresh_token"], "token_type_hint": "refresh_token"},
        timeout=30,
    )
    assert revoked.status_code == 200

    wait_for(lambda: not _auth_state(hub_admin, "bob"), "bob's IAM tokens gone", timeout=60)
    path = facility.state_dir / "users" / "bob" / ".facility" / "bearer_token"
    assert not path.exists()
    assert bob.api("GET", "/user").status_code == 403
    home = bob.session.get(f"{facility.url}/hub/home", allow_redirects=False, timeout=30)
    assert home.status_code == 302 and "/hub/login" in home.headers["location"]


def test_named_servers_and_the_idle_culler(login, hub_admin):
    carol = hub_admin
    url = carol.start_server(profile="large", server="bigger")
    assert url.endswith("/user/carol/bigger/")
    model = carol.api("GET", "/users/carol").json()
    assert model["servers"]["bigger"]["user_options"] == {"profile": "large"}
    carol.stop_server("bigger")

    culler = carol.api("GET", "/services/idle-culler").json()
    assert "--timeout=3600" in culler["command"]
    assert psutil.pid_exists(culler["pid"])
