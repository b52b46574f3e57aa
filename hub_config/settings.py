"""The facility's settings: one object for the local and the Kubernetes facility.

The same mapping comes from the Helm chart's ``facility:`` values (through z2jh's ``custom``
values) or, locally, from a YAML file. Keys are camelCase like Helm values; an unknown key or a
bad value fails at hub startup with its dotted path, so a typo cannot silently fall back to a
default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

GROUP_CLAIMS = ("groups", "wlcg.groups")
BACKENDS = ("local", "kubernetes")


class FacilityConfigError(ValueError):
    """A setting is missing or wrong; the message names it and says what to do."""


@dataclass(frozen=True)
class IAMSettings:
    """The INDIGO-IAM (or any OpenID Connect) client registration of the hub."""

    issuer: str = ""
    client_id: str = ""
    client_secret_file: str = ""
    groups_claim: str = "groups"
    allowed_groups: tuple[str, ...] = ()
    admin_groups: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    callback_url: str = ""
    # Logout ends the IAM session too (OpenID Connect RP-initiated logout): at the issuer's
    # end_session_endpoint unless set, then back to this URL (the hub's login page unless set),
    # which must be registered at IAM as a post-logout redirect URI of the client.
    end_session_url: str = ""
    post_logout_redirect_url: str = ""

    def client_secret(self) -> str:
        """The client secret, read from its file (a mounted Secret on Kubernetes)."""
        path = Path(self.client_secret_file)
        try:
            return path.read_text().strip()
        except OSError as err:
            raise FacilityConfigError(
                f"facility.iam.clientSecretFile: cannot read {path}: {err.strerror}"
            ) from err


@dataclass(frozen=True)
class TokenSettings:
    """How the user's IAM access token is kept fresh in the user's server."""

    refresh_margin: float = 300.0
    check_interval: float = 60.0
    auth_refresh_age: float = 300.0


@dataclass(frozen=True)
class Profile:
    """A server size and image a user may pick; ``groups`` restricts who may (empty: all)."""

    slug: str
    display_name: str
    cpu: float
    memory: str
    image: str = ""
    groups: tuple[str, ...] = ()
    default: bool = False

    @property
    def memory_bytes(self) -> int:
        return parse_bytes(self.memory, f"profile {self.slug!r} memory")


@dataclass(frozen=True)
class ServerSettings:
    named_server_limit: int = 3
    cull_idle_after: float = 3600.0
    cull_every: float = 300.0


@dataclass(frozen=True)
class DaskSettings:
    """Defaults of the Dask clusters users create from JupyterLab or ``facility_cluster()``."""

    idle_timeout: float = 1800.0


@dataclass(frozen=True)
class KubernetesSettings:
    """Where the facility runs; each user gets the namespace ``<namespace>-u-<user>``, with
    ``userQuota`` as its ResourceQuota's ``hard`` and ``userLimits`` as its LimitRange (per
    container: default, defaultRequest, max). ``xcachePorts``: the ports of the chart's XCache
    pods that users' pods may reach (none unless the site runs one)."""

    namespace: str = ""
    default_image: str = ""
    token_mount: str = "/var/run/secrets/facility"
    hub_account: str = "hub"
    operator_account: str = "dask-kubernetes-operator"
    user_quota: dict = field(default_factory=dict)
    user_limits: dict = field(default_factory=dict)
    xcache_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class BrandingSettings:
    """What the hub's pages (sign in, spawn, errors) and each new home's README say about the
    site: its name, what it is, and where documentation and support are."""

    name: str = "Analysis Facility"
    description: str = (
        "JupyterLab and Dask for High Energy Physics: sign in with your INDIGO-IAM account, "
        "pick a server size, and analyse ROOT files with uproot, awkward, hist and ROOT "
        "RDataFrame, on Dask clusters of your own."
    )
    logo_url: str = ""
    documentation_url: str = ""
    support_url: str = ""


@dataclass(frozen=True)
class LocalSettings:
    state_dir: str = "state"
    sample_data: str = ""


DEFAULT_PROFILES = (
    Profile("small", "Small: 1 CPU, 2 GiB", 1, "2G", default=True),
    Profile("medium", "Medium: 2 CPU, 4 GiB", 2, "4G"),
    Profile("large", "Large: 4 CPU, 8 GiB", 4, "8G", groups=("facility-admins",)),
)


@dataclass(frozen=True)
class FacilitySettings:
    backend: str = "local"
    iam: IAMSettings = field(default_factory=IAMSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    profiles: tuple[Profile, ...] = DEFAULT_PROFILES
    servers: ServerSettings = field(default_factory=ServerSettings)
    dask: DaskSettings = field(default_factory=DaskSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    branding: BrandingSettings = field(default_factory=BrandingSettings)


def parse_bytes(text: str, what: str) -> int:
    """'4G', '512M', '8Gi' or a plain number of bytes; K, M, G, T are powers of 1024, as in
    JupyterHub's and KubeSpawner's memory limits, so a profile means the same on both."""
    units = {"": 1} | {u: 1024 ** "_KMGT".index(u) for u in "KMGT"}
    units |= {f"{u}i": 1024 ** "_KMGT".index(u) for u in "KMGT"}
    value = str(text).strip()
    number = value.rstrip("KMGTi")
    try:
        return int(float(number) * units[value[len(number) :]])
    except (KeyError, ValueError):
        raise FacilityConfigError(
            f"{what}: {text!r} is not a size (use e.g. 4G, 512M or 8Gi)"
        ) from None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _build(cls, data: Any, path: str):
    if not isinstance(data, dict):
        raise FacilityConfigError(f"{path}: expected a mapping, got {data!r}")
    known = {_camel(f.name): f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise FacilityConfigError(
            f"{path}.{unknown[0]}: unknown setting; known here: {', '.join(sorted(known))}"
        )
    values = {}
    for key, value in data.items():
        f = known[key]
        values[f.name] = _convert(f.type, value, f"{path}.{key}")
    try:
        return cls(**values)
    except TypeError as err:
        raise FacilityConfigError(f"{path}: {err}") from None


_NESTED = {
    "IAMSettings": IAMSettings,
    "TokenSettings": TokenSettings,
    "ServerSettings": ServerSettings,
    "DaskSettings": DaskSettings,
    "KubernetesSettings": KubernetesSettings,
    "LocalSettings": LocalSettings,
    "BrandingSettings": BrandingSettings,
}


def _convert(kind: str, value: Any, path: str):
    if kind in _NESTED:
        return _build(_NESTED[kind], value or {}, path)
    if kind == "tuple[Profile, ...]":
        if not isinstance(value, list) or not value:
            raise FacilityConfigError(f"{path}: expected a non-empty list of profiles")
        return tuple(_build(Profile, p, f"{path}[{i}]") for i, p in enumerate(value))
    if kind == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FacilityConfigError(f"{path}: expected a list of strings, got {value!r}")
        return tuple(value)
    if kind == "tuple[int, ...]":
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536 for v in value
        ):
            raise FacilityConfigError(f"{path}: expected a list of port numbers, got {value!r}")
        return tuple(value)
    if kind == "dict":
        if not isinstance(value, dict):
            raise FacilityConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    caster = {"str": str, "float": float, "int": int, "bool": bool}[kind]
    if kind == "str" and not isinstance(value, str):
        raise FacilityConfigError(f"{path}: expected a string, got {value!r}")
    if kind in ("float", "int") and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise FacilityConfigError(f"{path}: expected a number, got {value!r}")
    if kind == "bool" and not isinstance(value, bool):
        raise FacilityConfigError(f"{path}: expected true or false, got {value!r}")
    return caster(value)


def _validate(settings: FacilitySettings) -> FacilitySettings:
    if settings.backend not in BACKENDS:
        raise FacilityConfigError(
            f"facility.backend: {settings.backend!r} is not one of {', '.join(BACKENDS)}"
        )
    iam = settings.iam
    if iam.groups_claim not in GROUP_CLAIMS:
        raise FacilityConfigError(
            f"facility.iam.groupsClaim: unknown group claim {iam.groups_claim!r}; use 'groups' "
            "(IAM profile tokens) or 'wlcg.groups' (WLCG profile tokens)"
        )
    for key in ("issuer", "client_id", "client_secret_file"):
        if not getattr(iam, key):
            raise FacilityConfigError(f"facility.iam.{_camel(key)}: required, and not set")
    if not iam.allowed_groups:
        raise FacilityConfigError(
            "facility.iam.allowedGroups: empty, so nobody could log in; list the IAM groups "
            "whose members may use the facility"
        )
    for key in ("logo_url", "documentation_url", "support_url"):
        url = getattr(settings.branding, key)
        if url and not url.startswith(("https://", "http://", "mailto:", "/")):
            raise FacilityConfigError(
                f"facility.branding.{_camel(key)}: {url!r} is not a link; use an https://, "
                "http:// or mailto: URL, or a path on the hub's site starting with /"
            )
    slugs = [p.slug for p in settings.profiles]
    if len(set(slugs)) != len(slugs):
        raise FacilityConfigError(f"facility.profiles: slugs must be unique, got {slugs}")
    for profile in settings.profiles:
        profile.memory_bytes  # noqa: B018 - validates the size
        if profile.cpu <= 0:
            raise FacilityConfigError(f"facility.profiles {profile.slug!r}: cpu must be > 0")
    return settings


def load_settings(data: dict) -> FacilitySettings:
    """Settings from the ``facility:`` mapping, validated."""
    return _validate(_build(FacilitySettings, data or {}, "facility"))


def load_settings_file(path: str | os.PathLike) -> FacilitySettings:
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise FacilityConfigError(f"facility settings file {path}: {err.strerror}") from err
    return load_settings(yaml.safe_load(text) or {})
