"""Headless Chromium for the console's browser tests and first-paint benchmark: Debian's
``chromium`` driven by PyPI ``playwright`` (never ``playwright install``: nothing is
downloaded), with the flags that keep it off the network."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
MISSING = (
    f"Chromium is missing at {CHROMIUM}: the console's browser checks need Debian's `chromium` "
    "(`apt-get install -y chromium`, which the bootstrap script does); they never download one"
)


def launch(playwright):
    """A headless Chromium browser from a started ``sync_playwright()``."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
    )


def sign_in(page, base_url: str, name: str, password: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
