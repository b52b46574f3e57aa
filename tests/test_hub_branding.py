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
