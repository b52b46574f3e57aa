"""The user's IAM access token, as a file in the user's server, kept fresh by the hub.

WLCG bearer token discovery reads the token from the file named by ``BEARER_TOKEN_FILE``; only
that path is in the server's environment, never the token. The hub writes the file when the
server starts and, while it runs, refreshes the token shortly before it expires and rewrites
the file. When IAM refuses the refresh token (revoked, expired, user removed from the allowed
groups) the file is removed and the user's auth state is cleared, so the user is logged out
instead of being left with a stale token.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from traitlets import Float, HasTraits


class TokenFile:
    """A token file replaced atomically, readable by its owner only."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    async def publish(self, token: str) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".token-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(token + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def withdraw(self) -> None:
        self.path.unlink(missing_ok=True)


class BearerTokenMixin(HasTraits):
    """Spawner mixin: publish the user's access token at start, refresh it while running.

    A spawner using it provides ``token_store()`` (an object with async ``publish(token)`` and
    ``withdraw()``) and ``token_path`` (where the server finds the token).
    """

    token_check_interval = Float(
        60,
        config=True,
        help="Seconds between checks that the running server's token is fresh.",
    )

    _token_task: asyncio.Task | None = None

    async def publish_token(self) -> bool:
        """Refresh if due, then write the current token; False when the user must log in again."""
        refreshed = await self.user.authenticator.refresh_user(self.user)
        state = await self.user.get_auth_state()
        store = self.token_store()
        if refreshed is False or not state or not state.get("access_token"):
            await store.withdraw()
            await self._log_user_out(state)
            return False
        await store.publish(state["access_token"])
        return True

    async def _log_user_out(self, state: dict | None) -> None:
        """Clear the auth state so every later hub request needs a new IAM login."""
        if state is not None:
            self.log.warning("IAM refused to refresh %s's token: logging them out", self.user.name)
            await self.user.save_auth_state(None)
        self.user._auth_refreshed = None

    async def _keep_token_fresh(self) -> None:
        while True:
            await asyncio.sleep(self.token_check_interval)
            try:
                await self.publish_token()
            except Exception:
                self.log.exception("Could not refresh the token of %s; will retry", self.user.name)

    def start_token_refresh(self) -> None:
        if self._token_task is None or self._token_task.done():
            self._token_task = asyncio.ensure_future(self._keep_token_fresh())

    async def stop_token_refresh(self) -> None:
        if self._token_task is not None:
            self._token_task.cancel()
            self._token_task = None
        await self.token_store().withdraw()

    def token_environment(self) -> dict[str, str]:
        return {"BEARER_TOKEN_FILE": str(self.token_path)}

    async def start(self):
        if not await self.publish_token():
            raise RuntimeError(
                f"{self.user.name} has no valid IAM token; log in again to start a server"
            )
        result = await super().start()
        self.start_token_refresh()
        return result

    async def poll(self):
        status = await super().poll()
        if status is None:
            self.start_token_refresh()
        return status

    async def stop(self, now=False):
        await self.stop_token_refresh()
        await super().stop(now=now)
