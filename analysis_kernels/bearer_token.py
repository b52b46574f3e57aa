"""The user's grid token, found as WLCG bearer token discovery says, read afresh at each use.

Order (WLCG Bearer Token Discovery): ``BEARER_TOKEN``, then the file ``BEARER_TOKEN_FILE``,
then ``$XDG_RUNTIME_DIR/bt_u<uid>``, then ``/tmp/bt_u<uid>``. The facility puts the token in a
file named by ``BEARER_TOKEN_FILE`` on the user's server and every Dask worker and rewrites it
before it expires, so reading it at each open picks up the refreshed token. The token itself
never goes into a message: errors say where it came from, whose it is and what it allows.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path


class TokenError(PermissionError):
    """No usable token: the message says where it looked or what is wrong, and what to do."""


@dataclass(frozen=True)
class BearerToken:
    value: str
    source: str  # where it was found, e.g. "BEARER_TOKEN_FILE=/home/alice/.token"

    def __repr__(self) -> str:  # never the value
        return f"BearerToken(from {self.source})"

    @property
    def claims(self) -> dict:
        """The JWT payload, unverified (the storage verifies it); {} for an opaque token."""
        try:
            payload = self.value.split(".")[1]
            return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError, binascii.Error):
            return {}

    @property
    def expires(self) -> datetime.datetime | None:
        exp = self.claims.get("exp")
        return datetime.datetime.fromtimestamp(exp, datetime.UTC) if exp else None

    def describe(self) -> str:
        """Whose token, its groups and storage scopes: what a refusal needs explained."""
        claims = self.claims
        who = claims.get("preferred_username") or claims.get("sub", "unknown subject")
        groups = ", ".join(claims.get("wlcg.groups", [])) or "none"
        scopes = [s for s in claims.get("scope", "").split() if s.startswith("storage.")]
        audience = claims.get("aud", "none")
        audience = ", ".join(audience) if isinstance(audience, list) else audience
        return (
            f"the token of {who} from {self.source} (groups: {groups}; "
            f"storage scopes: {', '.join(scopes) or 'none'}; issuer: {claims.get('iss', 'none')}; "
            f"audience: {audience})"
        )

    def check_fresh(self, what: str) -> None:
        """Refuse an expired token before the storage does, saying when it expired."""
        expires = self.expires
        if expires and expires <= datetime.datetime.now(datetime.UTC):
            raise TokenError(
                f"{what}: the token from {self.source} expired at "
                f"{expires:%Y-%m-%d %H:%M:%S} UTC. The facility refreshes it while you are "
                "logged in to the hub: log in again (or put a fresh token there)"
            )


def places() -> list[tuple[str, str | None]]:
    """Where discovery looks, in order: (description, file path or None for the variable)."""
    uid = os.getuid()
    found = [("BEARER_TOKEN", None)]
    if os.environ.get("BEARER_TOKEN_FILE"):
        found.append(
            (
                f"BEARER_TOKEN_FILE={os.environ['BEARER_TOKEN_FILE']}",
                os.environ["BEARER_TOKEN_FILE"],
            )
        )
    else:
        found.append(("BEARER_TOKEN_FILE (not set)", None))
    if os.environ.get("XDG_RUNTIME_DIR"):
        path = f"{os.environ['XDG_RUNTIME_DIR']}/bt_u{uid}"
        found.append((path, path))
    found.append((f"/tmp/bt_u{uid}", f"/tmp/bt_u{uid}"))
    return found


def find(what: str = "reading grid storage") -> BearerToken:
    """The current token, or :class:`TokenError` listing every place looked at."""
    value = os.environ.get("BEARER_TOKEN", "").strip()
    if value:
        return BearerToken(value, "BEARER_TOKEN")
    for description, path in places()[1:]:
        if path is None:
            continue
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value:
            return BearerToken(value, description)
    looked = "; ".join(description for description, _ in places())
    raise TokenError(
        f"{what}: no bearer token found (looked at: {looked}). On the facility the hub puts "
        "your IAM token in BEARER_TOKEN_FILE: log in again; elsewhere, set BEARER_TOKEN_FILE "
        "to a file holding your token"
    )
