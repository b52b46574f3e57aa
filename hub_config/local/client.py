"""A user of the local facility without a browser: log in through the development IAM's form,
then call the hub's REST API as that user. Used by the tests and the concurrency benchmark.
"""

from __future__ import annotations

import datetime
import json
import re
import time
import uuid
from urllib.parse import urljoin

import requests
import websocket


class LoginRefused(RuntimeError):
    """The provider or the hub refused the login; the message is what the page said."""


class HubUser:
    def __init__(self, hub_url: str, username: str, password: str):
        self.hub_url = hub_url.rstrip("/")
        self.name = username
        self.password = password
        self.session = requests.Session()
        self.token: str | None = None

    def login(self) -> HubUser:
        """The authorization code flow, through the provider's login form, to a hub cookie."""
        page = self.session.get(f"{self.hub_url}/hub/oauth_login?next=/hub/home", timeout=30)
        form = re.search(r'<form method="post" action="([^"]+)"', page.text)
        if not form:
            raise LoginRefused(f"no login form at {page.url} ({page.status_code})")
        landing = self.session.post(
            urljoin(page.url, form.group(1)),
            data={"username": self.name, "password": self.password},
            timeout=60,
        )
        if landing.status_code != 200 or not landing.url.startswith(self.hub_url):
            message = re.sub(r"<[^>]+>|\s+", " ", landing.text).strip()[:300]
            raise LoginRefused(f"login of {self.name} refused ({landing.status_code}): {message}")
        return self

    def _xsrf(self) -> dict:
        return {"X-XSRFToken": self.session.cookies.get("_xsrf", path="/hub/") or ""}

    def new_token(self, scopes: list[str] | None = None) -> str:
        """An API token of this user (cookie-authenticated request, as the hub's token page)."""
        body = {"note": "facility client", "expires_in": 3600}
        if scopes:
            body["scopes"] = scopes
        reply = self.session.post(
            f"{self.hub_url}/hub/api{self._user_path}/tokens",
            json=body,
            headers=self._xsrf(),
            timeout=30,
        )
        reply.raise_for_status()
        self.token = reply.json()["token"]
        return self.token

    @property
    def _user_path(self) -> str:
        """This user's path in the hub's API (names such as e-mail addresses quoted)."""
        return f"/users/{requests.utils.quote(self.name, safe='')}"

    def _server_path(self, server: str) -> str:
        """The API path of this user's default server, or of its server named ``server``."""
        return f"{self._user_path}/servers/{server}" if server else f"{self._user_path}/server"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """A hub API call with this user's token (``path`` below /hub/api)."""
        headers = {"Authorization": f"token {self.token}"} | kwargs.pop("headers", {})
        return requests.request(
            method, f"{self.hub_url}/hub/api{path}", headers=headers, timeout=60, **kwargs
        )

    def start_server(self, profile: str = "", server: str = "", timeout: float = 180) -> str:
        """Start this user's (named) server and wait until it answers; returns its URL."""
        reply = self.api(
            "POST", self._server_path(server), json={"profile": profile} if profile else {}
        )
        already = reply.status_code == 400 and "already running" in reply.text
        if reply.status_code not in (201, 202) and not already:
            raise RuntimeError(f"starting {self.name}'s server: {reply.status_code} {reply.text}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self._model()["servers"].get(server, {})
            if state.get("ready"):
                return self.hub_url + state["url"]
            if not state:
                raise RuntimeError(f"{self.name}'s server failed to start; see the hub's log")
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}'s server not ready after {timeout:.0f} s")

    def _model(self) -> dict:
        """This user's model from the hub (its servers, among others)."""
        reply = self.api("GET", self._user_path)
        reply.raise_for_status()
        return reply.json()

    def run_code(self, server_url: str, code: str, timeout: float = 600) -> str:
        """Run ``code`` in a new kernel of this user's server; its standard output, or KernelError.

        The Jupyter kernel protocol over the server's websocket, as JupyterLab speaks it.
        """
        headers = {"Authorization": f"token {self.token}"}
        base = server_url.rstrip("/")
        reply = requests.post(f"{base}/api/kernels", headers=headers, json={}, timeout=60)
        reply.raise_for_status()
        kernel = reply.json()["id"]
        socket = websocket.create_connection(
            f"ws{base.removeprefix('http')}/api/kernels/{kernel}/channels",
            header=[f"{k}: {v}" for k, v in headers.items()],
            timeout=timeout,
        )
        try:
            return _execute(socket, code, self.name)
        finally:
            socket.close()
            requests.delete(f"{base}/api/kernels/{kernel}", headers=headers, timeout=60)

    def stop_server(self, server: str = "", timeout: float = 120) -> None:
        """Stop this user's (named) server, if it runs, and wait until the hub has stopped it."""
        reply = self.api("DELETE", self._server_path(server), json={"remove": bool(server)})
        if reply.status_code not in (202, 204, 404):
            raise RuntimeError(f"stopping {self.name}'s server: {reply.status_code} {reply.text}")
        deadline = time.monotonic() + timeout
        while server in self._model()["servers"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}'s server still stopping after {timeout:.0f} s")
            time.sleep(0.5)


class KernelError(RuntimeError):
    """Code run in a user's kernel raised; the message is the kernel's traceback."""


def _execute(socket, code: str, username: str) -> str:
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "username": username,
        "session": uuid.uuid4().hex,
        "version": "5.3",
        "date": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False}
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    socket.send(json.dumps(message | {"channel": "shell", "buffers": []}))
    output = []
    while True:
        reply = json.loads(socket.recv())
        if reply.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, body = reply["msg_type"], reply["content"]
        if kind == "stream" and body["name"] == "stdout":
            output.append(body["text"])
        elif kind in ("execute_result", "display_data"):
            output.append(body["data"].get("text/plain", "") + "\n")
        elif kind == "error":
            traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(body["traceback"]))
            raise KernelError(traceback)
        elif kind == "status" and body["execution_state"] == "idle":
            return "".join(output)
