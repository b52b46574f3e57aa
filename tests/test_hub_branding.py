"""The facility's branding settings reach the hub's pages; a bad link is refused by name."""

from __future__ import annotations

import pytest
import requests

from hub_config.local.facility import LocalFacility
from hub_config.settings import FacilityConfigError, load_settings

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
