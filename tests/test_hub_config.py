"""hub_config on its own: settings, groups, profiles, ID-token checks, and startup errors."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado import web

from analysis_kernels.executor.processes import free_port
from hub_config.iam import IAMAuthenticator, groups_from_claims
from hub_config.local.facility import CLIENT_ID
from hub_config.profiles import allowed_profiles, choose_profile
from hub_config.settings import FacilityConfigError, load_settings

CONFIG = Path(__file__).resolve().parents[1] / "hub_config" / "jupyterhub_config.py"


def minimal(**iam) -> dict:
    base = {
        "issuer": "https://iam.example.org/",
        "clientId": "hub",
        "clientSecretFile": "/run/secrets/iam",
        "allowedGroups": ["cms"],
    }
    return {"iam": base | iam}


def test_settings_name_the_wrong_key():
    with pytest.raises(FacilityConfigError, match=r"facility\.iam\.groupClaim: unknown setting"):
        load_settings(minimal(groupClaim="groups"))
    with pytest.raises(FacilityConfigError, match=r"facility\.iam\.groupsClaim: unknown group"):
        load_settings(minimal(groupsClaim="roles"))
    with pytest.raises(FacilityConfigError, match=r"facility\.profiles\[0\]"):
        load_settings(minimal() | {"profiles": [{"slug": "x", "cpu": 1}]})
    with pytest.raises(FacilityConfigError, match=r"profile 'x' memory: '4 parsecs'"):
        load_settings(
            minimal()
            | {"profiles": [{"slug": "x", "displayName": "X", "cpu": 1, "memory": "4 parsecs"}]}
        )


def test_settings_defaults_and_sizes():
    settings = load_settings(minimal(groupsClaim="wlcg.groups"))
    assert settings.iam.groups_claim == "wlcg.groups"
    assert [p.memory_bytes for p in settings.profiles] == [2 * 2**30, 4 * 2**30, 8 * 2**30]


def test_wlcg_groups_lose_their_leading_slash():
    claims = {"wlcg.groups": ["/cms", "/cms/higgs"], "groups": ["atlas"]}
    assert groups_from_claims(claims, "wlcg.groups") == {"cms", "cms/higgs"}
    assert groups_from_claims(claims, "groups") == {"atlas"}
    assert groups_from_claims({}, "groups") == set()


def test_profiles_follow_groups_and_refuse_others():
    profiles = load_settings(minimal()).profiles
    assert [p.slug for p in allowed_profiles(profiles, {"cms"})] == ["small", "medium"]
    admin = allowed_profiles(profiles, {"facility-admins"})
    assert choose_profile(admin, "large").cpu == 4
    assert choose_profile(admin, None).slug == "small"
    with pytest.raises(PermissionError, match="'large' is not available"):
        choose_profile(allowed_profiles(profiles, {"cms"}), "large")


@pytest.mark.slow
def test_id_tokens_are_verified_against_the_issuers_keys(facility):
    authenticator = IAMAuthenticator(issuer=facility.issuer, client_id=CLIENT_ID)
    now = int(time.time())
    claims = {"iss": facility.issuer, "aud": CLIENT_ID, "sub": "x", "iat": now, "exp": now + 60}
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    real_kid = jwt.PyJWKClient(f"{facility.issuer}/jwk").get_jwk_set().keys[0].key_id
    forged = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": real_kid})
    with pytest.raises(web.HTTPError, match="Signature verification failed"):
        asyncio.run(authenticator.verify_id_token(forged))
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(web.HTTPError, match="failed verification"):
        asyncio.run(authenticator.verify_id_token(unsigned))


def start_hub(
    tmp_path: Path, settings: dict, crypt_key: bool = True
) -> subprocess.CompletedProcess:
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    settings = {"iam": {"clientSecretFile": str(secret)} | settings.pop("iam")} | settings
    settings["local"] = {"stateDir": str(tmp_path)}
    (tmp_path / "facility.yaml").write_text(yaml.safe_dump(settings))
    env = {k: v for k, v in os.environ.items() if k != "JUPYTERHUB_CRYPT_KEY"}
    env["FACILITY_SETTINGS"] = str(tmp_path / "facility.yaml")
    if crypt_key:
        env["JUPYTERHUB_CRYPT_KEY"] = secrets.token_hex(32)
    command = [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)]
    command.append(f"--JupyterHub.bind_url=http://127.0.0.1:{free_port()}")
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_hub_refuses_to_start_with_an_unknown_group_claim(tmp_path):
    settings = minimal(groupsClaim="wlcg_groups")
    settings["iam"].pop("clientSecretFile")
    result = start_hub(tmp_path, settings)
    assert result.returncode != 0
    assert "facility.iam.groupsClaim: unknown group claim 'wlcg_groups'" in result.stderr


@pytest.mark.slow
def test_hub_refuses_to_start_with_an_unreachable_issuer(tmp_path):
    issuer = f"http://127.0.0.1:{free_port()}"
    settings = minimal(issuer=issuer)
    settings["iam"].pop("clientSecretFile")
    result = start_hub(tmp_path, settings)
    assert result.returncode != 0
    assert f"facility.iam.issuer '{issuer}': OpenID discovery at {issuer}/.well-known" in (
        result.stderr
    )
    assert "Check the issuer URL and that the hub can reach it" in result.stderr


@pytest.mark.slow
def test_hub_refuses_to_start_without_a_crypt_key(tmp_path):
    settings = minimal()
    settings["iam"].pop("clientSecretFile")
    result = start_hub(tmp_path, settings, crypt_key=False)
    assert result.returncode != 0
    assert "JUPYTERHUB_CRYPT_KEY is not set" in result.stderr
    assert "openssl rand -hex 32" in result.stderr
