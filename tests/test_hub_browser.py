"""A physicist's first minutes, in a real browser (Debian's chromium, driven by Playwright).

Each test leaves screenshots of what it checked in ``output/screenshots/`` for a person to
look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"

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


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def sign_in(page, facility, username: str, password: str) -> None:
    page.goto(f"{facility.url}/hub/login")
    page.get_by_text("Sign in with IAM").click()
    fill_iam_form(page, username, password)


def fill_iam_form(page, username: str, password: str) -> None:
    expect(page.locator("h1")).to_have_text("Development IAM")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in")


def expect_signed_in_as(page, facility, username: str) -> None:
    """Back at the hub (the spawn page, or a server already running), as ``username``."""
    page.wait_for_url(f"{facility.url}/**")
    page.goto(f"{facility.url}/hub/home")
    expect(page.locator("#login_widget")).to_contain_text(username)


def test_landing_page_says_what_the_facility_is(page, facility):
    page.goto(facility.url)
    page.wait_for_url("**/hub/login**")
    expect(page).to_have_title("Analysis Facility")
    expect(page.locator("#facility-name")).to_have_text("Analysis Facility")
    welcome = page.locator("#facility-welcome")
    expect(welcome.locator("h1")).to_have_text("Analysis Facility")
    expect(welcome).to_contain_text("JupyterLab and Dask for High Energy Physics")
    expect(welcome).to_contain_text("example notebooks and the Dask sidebar")
    expect(page.get_by_role("button", name="Sign in with IAM")).to_be_visible()
    assert page.evaluate("document.querySelector('.jpy-logo').naturalWidth") > 0
    screenshot(page, "landing")


def test_cms_user_logs_in_picks_a_profile_and_finds_the_dask_sidebar(page, facility, login):
    login("alice").stop_server()  # other tests on this session's facility may have started it
    sign_in(page, facility, "alice", "alice-pw")
    page.wait_for_url("**/hub/spawn**")
    expect(page.locator("h1")).to_have_text("Start your server on Analysis Facility")
    profiles = page.locator("#facility-profiles input[name=profile]")
    assert sorted(profiles.evaluate_all("els => els.map(e => e.value)")) == ["medium", "small"]
    page.check("#facility-profiles input[value=medium]")
    screenshot(page, "spawn")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/user/alice/lab**", timeout=120_000)
    # The welcome README is in the new home, beside the examples.
    listing = page.locator(".jp-DirListing-content")
    expect(listing.get_by_text("README.md", exact=True)).to_be_visible(timeout=60_000)
    expect(listing.get_by_text("examples", exact=True)).to_be_visible()
    dask_tab = page.locator('[data-id="dask-dashboard-launcher"]')
    dask_tab.click(timeout=60_000)
    expect(page.get_by_role("tab", name="Dask")).to_have_attribute("aria-selected", "true")
    page.get_by_text("NEW", exact=True).click(timeout=30_000)
    # The facility's factory made a LocalCluster of the medium profile's two workers, and
    # the sidebar connected to its dashboard through the server's proxy.
    expect(page.get_by_text("Scheduler Address")).to_be_visible(timeout=90_000)
    expect(page.get_by_text("Workers: 2")).to_be_visible()
    expect(page.get_by_text("Task Stream", exact=True)).to_be_visible()
    # Over 30 dashboard buttons scroll in their own box: the cluster card stays in view.
    assert page.locator(".dask-DashboardListing-item").count() > 20
    expect(page.locator(".dask-ClusterListingItem").first).to_be_in_viewport()
    # JupyterLab's announcements are off: no question about Jupyter news, by now or later.
    expect(page.get_by_text("official Jupyter news")).to_have_count(0)
    screenshot(page, "lab-dask-sidebar")


def test_refused_user_reads_why_once_and_signs_out_to_try_another_account(page, facility):
    sign_in(page, facility, "dave", "dave-pw")
    expect(page.locator("h1")).to_have_text("Access refused")
    refusal = "dave is not in any IAM group allowed on this facility"
    expect(page.get_by_text(refusal)).to_have_count(1)
    expect(page.locator("body")).to_contain_text("atlas, cms, facility-admins")
    screenshot(page, "refused-403")
    page.get_by_role("button", name="Sign out and use another account").click()
    # The IAM session ended with the hub's: signing in asks IAM for an account again.
    page.wait_for_url("**/hub/login**")
    page.get_by_text("Sign in with IAM").click()
    fill_iam_form(page, "alice", "alice-pw")
    expect_signed_in_as(page, facility, "alice")


def test_logout_ends_the_iam_session_so_another_user_can_sign_in(page, facility):
    sign_in(page, facility, "bob", "bob-pw")
    expect_signed_in_as(page, facility, "bob")
    page.locator("#logout").click()
    page.wait_for_url("**/hub/login**")
    expect(page.locator("#facility-welcome h1")).to_have_text("Analysis Facility")
    screenshot(page, "after-logout")
    page.get_by_text("Sign in with IAM").click()
    expect(page.locator("#username")).to_be_visible()  # not straight back in as bob
    screenshot(page, "iam-form-after-logout")
    fill_iam_form(page, "carol", "carol-pw")
    expect_signed_in_as(page, facility, "carol")
    screenshot(page, "signed-in-as-another-user")


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
