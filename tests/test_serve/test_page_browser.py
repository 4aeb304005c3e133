"""The page in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium with the driver path given, so Selenium Manager never downloads anything) uploads a
photo and a text file, shows before/after and a plain-words error, and downloads the result,
which must equal the API's answer for the same photo and strength.

``LPTN_SERVE_SCREENSHOT=docs/images/serve.png`` also saves a screenshot of the page (the
README's picture)."""

from __future__ import annotations

import base64
import os
import shutil
import time
from pathlib import Path
from typing import Iterator, List

import numpy as np
import pytest
from serve_test_utils import Server, decode, post

webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -e '.[browser-test]'")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

STRENGTH = "0.75"


def _browser_paths() -> tuple:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if chromium is None or not Path(driver).is_file():
        # CI installs them (.ci/run); there their absence is a failure, not a skip.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "headless Chromium not found: apt-get install chromium chromium-driver"
        )
    return chromium, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple]:
    chromium, driver_path = _browser_paths()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1100,1000",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager reach the network
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield driver, downloads
    finally:
        driver.quit()


def wait_for_download(folder: Path, timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if not p.name.endswith(".crdownload")]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no download in {folder} after {timeout} s")


def test_upload_preview_error_and_download(
    server: Server, browser: tuple, photo_paths: List[Path], tmp_path: Path
) -> None:
    driver, downloads = browser
    driver.get(server.url + "/")
    wait = WebDriverWait(driver, 120)
    wait.until(lambda d: "LPTN" in d.find_element(By.ID, "model-info").text)
    strength = driver.find_element(By.ID, "strength")
    driver.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
        strength,
        STRENGTH,
    )
    assert driver.find_element(By.ID, "strength-value").text == "75%"

    not_a_photo = tmp_path / "notes.txt"
    not_a_photo.write_text("these are words, not pixels")
    photos = photo_paths[:2]
    files = [str(p) for p in photos] + [str(not_a_photo)]
    driver.find_element(By.ID, "file-input").send_keys("\n".join(files))

    def cards_settled(d) -> bool:
        states = [c.get_attribute("data-state") for c in d.find_elements(By.CSS_SELECTOR, ".card")]
        return len(states) == 3 and "working" not in states

    wait.until(cards_settled)
    cards = driver.find_elements(By.CSS_SELECTOR, ".card")
    assert [c.get_attribute("data-state") for c in cards] == ["done", "done", "error"]
    error = cards[2].find_element(By.CSS_SELECTOR, ".status").text
    assert "not an image" in error and "Traceback" not in error
    assert not cards[2].find_element(By.CSS_SELECTOR, ".download").is_displayed()
    assert not cards[2].find_element(By.CSS_SELECTOR, ".compare").is_displayed()
    for card in cards[:2]:
        for img in card.find_elements(By.CSS_SELECTOR, ".compare img"):
            assert driver.execute_script("return arguments[0].naturalWidth", img) > 0
    # Move the divider: the before image is revealed up to it.
    divider = cards[0].find_element(By.CSS_SELECTOR, ".divider")
    driver.execute_script(
        "arguments[0].value = 35; arguments[0].dispatchEvent(new Event('input'));", divider
    )
    before = cards[0].find_element(By.CSS_SELECTOR, ".compare img.before")
    clip = driver.execute_script("return getComputedStyle(arguments[0]).clipPath", before)
    assert clip == "inset(0px 65% 0px 0px)", clip  # 65% hidden on the right

    # Dropping a photo on the drop zone works like choosing it.
    driver.execute_script(
        """
        const [zone, base64, name] = arguments;
        const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, { type: "image/png" }));
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true }));
        """,
        driver.find_element(By.ID, "drop-zone"),
        base64.b64encode(photo_paths[2].read_bytes()).decode(),
        "dropped.png",
    )
    wait.until(
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, ".card")) == 4
            and d.find_elements(By.CSS_SELECTOR, ".card")[3].get_attribute("data-state") == "done"
        )
    )

    shot = os.environ.get("LPTN_SERVE_SCREENSHOT")
    if shot:
        driver.save_screenshot(shot)

    link = cards[0].find_element(By.CSS_SELECTOR, ".download")
    assert link.get_attribute("download") == f"{photos[0].stem}-enhanced.png"
    link.click()
    downloaded = wait_for_download(downloads)
    assert downloaded.name == f"{photos[0].stem}-enhanced.png"
    status, _, api_result = post(
        server.url, photos[0].read_bytes(), "image/png", f"?strength={STRENGTH}"
    )
    assert status == 200
    got = decode(downloaded.read_bytes())
    np.testing.assert_array_equal(got, decode(api_result))
    assert got.shape == decode(photos[0].read_bytes()).shape
