"""A physicist's first minutes, in a real browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags, chromium's calls home are refused by a closed
# network, many at a time.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    yield context.new_page()
    context.close()


def sign_in(page, facility, username: str, password: str) -> None:
    page.goto(f"{facility.url}/hub/login")
    page.get_by_text("Sign in with IAM").click()
    expect(page.locator("h1")).to_have_text("Development IAM")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in")


def test_cms_user_logs_in_picks_a_profile_and_finds_the_dask_sidebar(page, facility):
    sign_in(page, facility, "alice", "alice-pw")
    page.wait_for_url("**/hub/spawn**")
    profiles = page.locator("#facility-profiles input[name=profile]")
    assert sorted(profiles.evaluate_all("els => els.map(e => e.value)")) == ["medium", "small"]
    page.check("#facility-profiles input[value=medium]")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/user/alice/lab**", timeout=120_000)
    dask_tab = page.locator('[data-id="dask-dashboard-launcher"]')
    dask_tab.click(timeout=60_000)
    expect(page.get_by_role("tab", name="Dask")).to_have_attribute("aria-selected", "true")
    page.get_by_text("NEW", exact=True).click(timeout=30_000)
    # The facility's factory made a LocalCluster of the medium profile's two workers, and
    # the sidebar connected to its dashboard through the server's proxy.
    expect(page.get_by_text("Scheduler Address")).to_be_visible(timeout=90_000)
    expect(page.get_by_text("Workers: 2")).to_be_visible()
    expect(page.get_by_text("Task Stream", exact=True)).to_be_visible()


def test_user_in_no_allowed_group_is_refused_with_a_clear_page(page, facility):
    sign_in(page, facility, "dave", "dave-pw")
    body = page.locator("body")
    expect(body).to_contain_text("403")
    expect(body).to_contain_text("dave is not in any IAM group allowed on this facility")
    expect(body).to_contain_text("atlas, cms, facility-admins")


def test_wrong_password_stays_on_the_login_form(page, facility):
    sign_in(page, facility, "alice", "not-her-password")
    expect(page.locator("#error")).to_have_text("Unknown username or wrong password.")


def test_admin_group_member_gets_the_admin_panel(page, facility, login):
    login("alice")  # so that the panel has somebody else to list
    sign_in(page, facility, "carol", "carol-pw")
    page.wait_for_url("**/hub/spawn**")
    page.goto(f"{facility.url}/hub/admin")
    expect(page.get_by_test_id("user-name-div-alice")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Add Users")).to_be_visible()
