"""Log in through INDIGO-IAM (or any OpenID Connect provider) with oauthenticator.

What this adds to ``GenericOAuthenticator``:

- endpoints from the issuer's OpenID discovery document, fetched at hub startup, so a wrong or
  unreachable issuer stops the hub with a message instead of failing at the first login;
- the ID token's signature, issuer, audience and expiry verified against the issuer's keys
  (oauthenticator's ``userdata_from_id_token`` skips the signature);
- groups from IAM's ``groups`` claim or the WLCG profile's ``wlcg.groups`` (a dotted claim
  name, which oauthenticator's ``auth_state_groups_key`` would read as a nested path), with the
  WLCG leading ``/`` stripped;
- a refresh that happens only when the access token is close to expiry, one at a time per user,
  and that returns ``False`` (log in again) when the provider refuses the refresh token;
- a logout that ends the IAM session too (OpenID Connect RP-initiated logout), so that the next
  "Sign in" asks IAM for an account again instead of coming straight back as the same user.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from urllib.parse import urlencode

import jwt
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLogoutHandler
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Enum, Float, Unicode, default

from hub_config.settings import GROUP_CLAIMS, FacilityConfigError

SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"]


def discover(issuer: str, timeout: float = 10.0) -> dict:
    """The issuer's OpenID discovery document; a clear error when it cannot be had."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise FacilityConfigError(
            f"facility.iam.issuer {issuer!r}: OpenID discovery at {url} failed ({reason}). "
            "Check the issuer URL and that the hub can reach it."
        ) from err
    if document.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
        raise FacilityConfigError(
            f"facility.iam.issuer {issuer!r}: the discovery document names issuer "
            f"{document.get('issuer')!r}; set facility.iam.issuer to exactly that"
        )
    return document


def groups_from_claims(claims: dict, claim: str) -> set[str]:
    """The user's groups: WLCG group paths lose their leading '/' (``/cms/higgs`` → ``cms/higgs``)."""
    groups = claims.get(claim) or []
    if isinstance(groups, str):
        groups = groups.split()
    if claim == "wlcg.groups":
        return {g.lstrip("/") for g in groups}
    return set(groups)


class IAMLogoutHandler(OAuthLogoutHandler):
    """The hub's logout, then IAM's: the browser goes on to the issuer's end-session endpoint
    with the user's ID token as hint, and IAM sends it back to the hub's login page."""

    async def get(self):
        user = self.current_user
        auth_state = await user.get_auth_state() if user else None
        self._id_token = (auth_state or {}).get("id_token")
        await super().get()

    async def render_logout_page(self):
        back = self.authenticator.post_logout_redirect_url or (
            f"{self.request.protocol}://{self.request.host}{self.settings['login_url']}"
        )
        url = self.authenticator.end_session_redirect(self._id_token, back)
        if url:
            self.redirect(url)
        else:
            await super().render_logout_page()


class IAMAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator configured from the issuer, with verified ID tokens."""

    logout_handler = IAMLogoutHandler

    issuer = Unicode(
        config=True, help="The OpenID Connect issuer URL, e.g. https://iam.example.org/"
    )
    groups_claim = Enum(
        GROUP_CLAIMS,
        default_value="groups",
        config=True,
        help="Claim with the user's groups: 'groups' (IAM profile) or 'wlcg.groups' (WLCG profile).",
    )
    jwks_url = Unicode(config=True, help="The issuer's signing keys; from discovery if unset.")
    refresh_margin = Float(
        300,
        config=True,
        help="Refresh the access token when it expires within this many seconds.",
    )
    end_session_url = Unicode(
        config=True,
        help="IAM's end-session (RP-initiated logout) endpoint; from discovery if unset. "
        "Without one, logout ends the hub's session only.",
    )
    post_logout_redirect_url = Unicode(
        config=True,
        help="Where IAM sends the browser after logout, registered at IAM for this client; "
        "the hub's login page (from the request) if unset.",
    )

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("scope")
    def _scope_default(self):
        scopes = ["openid", "profile", "email", "offline_access"]
        return scopes + (["wlcg.groups"] if self.groups_claim == "wlcg.groups" else [])

    @default("login_service")
    def _login_service_default(self):
        return "IAM"

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self):
        return True

    @default("auth_state_groups_key")
    def _auth_state_groups_key_default(self):
        return lambda auth_state: groups_from_claims(
            auth_state.get(self.user_auth_state_key) or {}, self.groups_claim
        )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not self.issuer:
            raise FacilityConfigError("facility.iam.issuer: required, and not set")
        document = discover(self.issuer)
        self.authorize_url = self.authorize_url or document["authorization_endpoint"]
        self.token_url = self.token_url or document["token_endpoint"]
        self.jwks_url = self.jwks_url or document["jwks_uri"]
        self.end_session_url = self.end_session_url or document.get("end_session_endpoint", "")
        if not self.end_session_url:
            self.log.warning(
                "%s advertises no end_session_endpoint: logout ends the hub's session only",
                self.issuer,
            )
        self.userdata_url = ""
        self._keys: dict[str, jwt.PyJWK] = {}
        self._refresh_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def end_session_redirect(self, id_token: str | None, post_logout_redirect: str) -> str:
        """The URL that ends the user's IAM session and comes back to ``post_logout_redirect``
        (empty without an end-session endpoint). The client id stands in for the ID token
        when there is none, as for a user the hub refused."""
        if not self.end_session_url:
            return ""
        params = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect}
        if id_token:
            params["id_token_hint"] = id_token
        joiner = "&" if "?" in self.end_session_url else "?"
        return f"{self.end_session_url}{joiner}{urlencode(params)}"

    async def _signing_key(self, kid: str | None) -> jwt.PyJWK:
        if kid not in self._keys:
            document = await self.httpfetch(self.jwks_url, "fetching signing keys")
            keys = jwt.PyJWKSet.from_dict(document).keys
            self._keys = {key.key_id: key for key in keys}
            if kid is None and len(keys) == 1:
                self._keys[None] = keys[0]
        if kid not in self._keys:
            raise web.HTTPError(403, f"ID token signed with unknown key {kid!r} of {self.issuer}")
        return self._keys[kid]

    async def verify_id_token(self, id_token: str) -> dict:
        """The ID token's claims, once its signature, issuer, audience and expiry check out."""
        try:
            header = jwt.get_unverified_header(id_token)
            key = await self._signing_key(header.get("kid"))
            return jwt.decode(
                id_token,
                key=key,
                algorithms=SIGNING_ALGORITHMS,
                audience=self.client_id,
                issuer=self.issuer,
                leeway=60,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as err:
            message = f"ID token from {self.issuer} failed verification: {err}"
            raise web.HTTPError(403, message) from err

    async def token_to_user(self, token_info):
        id_token = token_info.get("id_token")
        if not id_token:
            raise web.HTTPError(
                403, f"{self.issuer} returned no ID token; the client needs the 'openid' scope"
            )
        return await self.verify_id_token(id_token)

    def build_auth_state_dict(self, token_info, user_info):
        state = super().build_auth_state_dict(token_info, user_info)
        state["expires_at"] = time.time() + float(token_info.get("expires_in", 0) or 0)
        return state

    async def check_allowed(self, username, auth_model):
        if await super().check_allowed(username, auth_model):
            return True
        raise web.HTTPError(
            403,
            f"{username} is not in any IAM group allowed on this facility "
            f"({', '.join(sorted(self.allowed_groups))}). Ask your IAM administrator to add "
            "you to one of them.",
        )

    async def refresh_user(self, user, handler=None, **kwargs):
        """Refresh near expiry only; ``False`` when the provider refuses the refresh token."""
        async with self._refresh_locks[user.name]:
            auth_state = await user.get_auth_state()
            if not auth_state or not auth_state.get("access_token"):
                return False
            if auth_state.get("expires_at", 0) - time.time() > self.refresh_margin:
                return True
            refresh_token = auth_state.get("refresh_token")
            if not refresh_token:
                return False
            params = self.build_refresh_token_request_params(refresh_token)
            try:
                token_info = await self.get_token_info(handler, params)
            except (HTTPClientError, web.HTTPError) as err:
                code = getattr(err, "code", None) or getattr(err, "status_code", None)
                if code and 400 <= code < 500:
                    self.log.warning("IAM refused the refresh token of %s: %s", user.name, err)
                    return False
                raise
            token_info.setdefault("refresh_token", refresh_token)
            if "id_token" in token_info:
                model = await self._token_to_auth_model(token_info)
            else:
                claims = auth_state.get(self.user_auth_state_key) or {}
                state = self.build_auth_state_dict(token_info, claims)
                state["id_token"] = state["id_token"] or auth_state.get("id_token")  # logout hint
                model = {
                    "name": user.name,
                    "auth_state": state,
                    "groups": sorted(await self.get_user_groups(state)),
                }
            if self.manage_groups and not (
                set(model.get("groups", ())) & (self.allowed_groups | self.admin_groups)
            ):
                self.log.warning("%s is no longer in an allowed group", user.name)
                return False
            await user.save_auth_state(model["auth_state"])
            return model
