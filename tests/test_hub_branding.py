"""The facility's branding reaches the hub's pages and new homes; a bad link is refused by name."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests

from hub_config.local.facility import LocalFacility
from hub_config.settings import BrandingSettings, FacilityConfigError, load_settings
from hub_config.welcome import seed_welcome_hook

BRANDING = {
    "name": "CMS Italia Analysis Facility",
    "description": "Columnar analysis on the INFN cloud.",
    "documentationUrl": "https://docs.example.org/facility",
    "supportUrl": "mailto:facility-support@example.org",
}


def test_a_branding_link_that_is_not_one_is_refused_by_name():
    iam = {"issuer": "https://iam.example.org/", "clientId": "hub", "clientSecretFile": "/s"}
    settings = {"iam": iam | {"allowedGroups": ["cms"]}}
    with pytest.raises(FacilityConfigError, match=r"facility\.branding\.supportUrl: 'help desk'"):
        load_settings(settings | {"branding": {"supportUrl": "help desk"}})
    with pytest.raises(FacilityConfigError, match=r"facility\.branding\.colour: unknown setting"):
        load_settings(settings | {"branding": {"colour": "blue"}})


def test_a_new_home_gets_a_readme_saying_where_things_are_and_an_old_home_is_left_alone(
    tmp_path,
):
    branding = BrandingSettings(documentation_url="https://docs.example.org/facility")
    hook = seed_welcome_hook(branding, "/srv/facility/sample")
    new, old = tmp_path / "new", tmp_path / "old"
    old.mkdir()
    for home in (new, old):
        hook(SimpleNamespace(home_dir=str(home)))  # the hook reads only the home directory
    readme = (new / "README.md").read_text()
    for where in ("`examples/`", "`/srv/facility/sample`", "Dask tab", "https://docs.example.org"):
        assert where in readme
    assert not (old / "README.md").exists()  # deleted or never there: not forced back


@pytest.mark.slow
def test_the_sites_name_words_and_links_are_on_the_landing_page(tmp_path):
    with LocalFacility(tmp_path / "state", extra_settings={"branding": BRANDING}) as facility:
        page = requests.get(f"{facility.url}/hub/login", timeout=30)
        logo = requests.get(f"{facility.url}/hub/logo", timeout=30)
    assert page.ok
    assert "<title>CMS Italia Analysis Facility</title>" in page.text
    assert "Columnar analysis on the INFN cloud." in page.text
    assert 'href="https://docs.example.org/facility">Documentation</a>' in page.text
    assert 'href="mailto:facility-support@example.org">Support</a>' in page.text
    assert logo.ok and logo.headers["Content-Type"].startswith("image/svg")


def test_a_kubernetes_servers_pod_welcomes_its_new_home_once(tmp_path):
    """What the server's postStart hook runs (the hub cannot reach the home volume): README.md
    and the examples in a new home, and never again once the user has deleted them."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = os.environ | {"HOME": str(home), "FACILITY_WELCOME": "# Welcome to the test site\n"}
    command = [sys.executable, "-m", "hub_config.welcome"]
    subprocess.run(command, env=env, check=True, timeout=60)
    assert (home / "README.md").read_text() == "# Welcome to the test site\n"
    assert sorted(p.name for p in (home / "examples").glob("*.ipynb"))
    (home / "README.md").unlink()
    subprocess.run(command, env=env, check=True, timeout=60)
    assert not (home / "README.md").exists(), "a deleted README came back"
