"""Access tokens from the development IAM for the storage tests: the authorization code flow
through its login form, as a browser would, with the hub's client (the hub need not run)."""

from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qs, urljoin, urlparse

import requests

from hub_config.local.facility import CLIENT_ID, LocalFacility


def login(facility: LocalFacility, username: str, password: str, resource: str = "") -> dict:
    """The token response (``access_token``, ``refresh_token``...) for a user."""
    verify = str(facility.ca.ca_file)
    session = requests.Session()
    redirect = f"{facility.url}/hub/oauth_callback"
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": "openid profile offline_access wlcg.groups",
        "state": secrets.token_hex(8),
        "prompt": "consent",
    }
    if resource:
        query["resource"] = resource
    page = session.get(f"{facility.issuer}/authorize", params=query, verify=verify, timeout=30)
    form = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert form, f"no login form at {page.url}: {page.text[:300]}"
    reply = session.post(
        urljoin(page.url, form.group(1)),
        data={"username": username, "password": password},
        verify=verify,
        allow_redirects=False,
        timeout=30,
    )
    while not reply.headers.get("location", "").startswith(redirect):
        assert reply.is_redirect, f"login of {username}: {reply.status_code} {reply.text[:300]}"
        reply = session.get(
            urljoin(reply.url, reply.headers["location"]),
            verify=verify,
            allow_redirects=False,
            timeout=30,
        )
    code = parse_qs(urlparse(reply.headers["location"]).query)["code"][0]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
    if resource:
        data["resource"] = resource
    return _token(facility, data)


def refresh(facility: LocalFacility, refresh_token: str) -> dict:
    """A new access token, as the hub's refresh does."""
    return _token(facility, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def _token(facility: LocalFacility, data: dict) -> dict:
    secret = facility.client_secret_file.read_text().strip()
    reply = requests.post(
        f"{facility.issuer}/token",
        data=data,
        auth=(CLIENT_ID, secret),
        verify=str(facility.ca.ca_file),
        timeout=30,
    )
    assert reply.status_code == 200, f"token endpoint: {reply.status_code} {reply.text}"
    return reply.json()
