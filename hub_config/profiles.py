"""Server profiles a user may pick, filtered by the user's IAM groups, for either spawner."""

from __future__ import annotations

import html

from hub_config.settings import Profile


def allowed_profiles(profiles: tuple[Profile, ...], groups: set[str]) -> list[Profile]:
    """Profiles open to everyone, plus those restricted to one of the user's groups."""
    return [p for p in profiles if not p.groups or set(p.groups) & groups]


def choose_profile(profiles: list[Profile], slug: str | None) -> Profile:
    """The profile a user asked for (the default one when none), checked against what is allowed.

    User options come from a form or straight from the REST API, so an unknown or forbidden
    slug is refused here, on the hub, not in the browser.
    """
    if not profiles:
        raise PermissionError("no server profile is open to your IAM groups")
    if not slug:
        return next((p for p in profiles if p.default), profiles[0])
    for profile in profiles:
        if profile.slug == slug:
            return profile
    raise PermissionError(
        f"profile {slug!r} is not available to you; choose one of "
        f"{', '.join(p.slug for p in profiles)}"
    )


def options_form(profiles: list[Profile]) -> str:
    """The spawn page's profile choice, as JupyterHub's options form HTML."""
    rows = []
    for profile in profiles:
        checked = " checked" if profile.default else ""
        rows.append(
            f'<label class="form-check"><input class="form-check-input" type="radio" '
            f'name="profile" value="{html.escape(profile.slug)}"{checked}> '
            f"{html.escape(profile.display_name)}</label>"
        )
    return '<div class="form-group" id="facility-profiles">' + "".join(rows) + "</div>"


def kubespawner_profile(profile: Profile, default_image: str) -> dict:
    """One entry of KubeSpawner's ``profile_list``."""
    return {
        "display_name": profile.display_name,
        "slug": profile.slug,
        "default": profile.default,
        "kubespawner_override": {
            "cpu_guarantee": profile.cpu,
            "cpu_limit": profile.cpu,
            "mem_guarantee": profile.memory,
            "mem_limit": profile.memory,
            "image": profile.image or default_image,
        },
    }
