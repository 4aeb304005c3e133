"""The page in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium with the driver path given, so Selenium Manager never downloads anything) uploads
photos and a text file, shows before/after previews made by the server (also of 16-bit TIFF
and HEIC, which browsers cannot show) and a plain-words error, blends the strength live in a
canvas without asking the server again, asks for the API key of a server that has one, and
downloads the result, which must equal the API's answer for the same photo and strength byte
for byte.

``LPTN_SERVE_SCREENSHOT=docs/images/serve.png`` also saves a screenshot of the page (the
picture in docs/serve.md)."""

from __future__ import annotations

import base64
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, List

import cv2
import numpy as np
import pytest
from PIL import Image
from serve_test_utils import API_KEY, Server, decode, get_json, post

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


def set_value(driver: Any, element: Any, value: str) -> None:
    """Set a range input as a user's drag does: the value, then an ``input`` event."""
    driver.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
        element,
        value,
    )


def canvas_pixels(driver: Any, canvas: Any) -> np.ndarray:
    """What a canvas shows, as an RGB(A) array (read back through a PNG data URL)."""
    url = driver.execute_script("return arguments[0].toDataURL('image/png')", canvas)
    data = base64.b64decode(url.split(",", 1)[1])
    return decode(data)


def api_requests(driver: Any) -> List[str]:
    """The /v1/ requests the page has made (the browser's own resource timing records)."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((n) => n.includes('/v1/'))"
    )


def settled(count: int):
    def ready(d: Any) -> bool:
        states = [c.get_attribute("data-state") for c in d.find_elements(By.CSS_SELECTOR, ".card")]
        return len(states) == count and "working" not in states

    return ready


def test_upload_preview_error_and_download(
    server: Server, browser: tuple, photo_paths: List[Path], tmp_path: Path
) -> None:
    driver, downloads = browser
    driver.get(server.url + "/")
    wait = WebDriverWait(driver, 120)
    wait.until(lambda d: "LPTN" in d.find_element(By.ID, "model-info").text)
    assert not driver.find_element(By.ID, "key-form").is_displayed()  # no key on this server
    accept = driver.find_element(By.ID, "file-input").get_attribute("accept").split(",")
    assert {"image/*", ".heic", ".dng", ".cr2", ".nef"} <= set(accept)  # RAW has no image/*
    strength = driver.find_element(By.ID, "strength")
    set_value(driver, strength, STRENGTH)
    assert driver.find_element(By.ID, "strength-value").text == "75%"

    not_a_photo = tmp_path / "notes.txt"
    not_a_photo.write_text("these are words, not pixels")
    photos = photo_paths[:2]
    files = [str(p) for p in photos] + [str(not_a_photo)]
    driver.find_element(By.ID, "file-input").send_keys("\n".join(files))

    wait.until(settled(3))
    cards = driver.find_elements(By.CSS_SELECTOR, ".card")
    assert [c.get_attribute("data-state") for c in cards] == ["done", "done", "error"]
    error = cards[2].find_element(By.CSS_SELECTOR, ".status").text
    assert "not an image" in error and "Traceback" not in error
    assert not cards[2].find_element(By.CSS_SELECTOR, ".download").is_displayed()
    assert not cards[2].find_element(By.CSS_SELECTOR, ".compare").is_displayed()
    for card, photo in zip(cards[:2], photos):
        height, width = decode(photo.read_bytes()).shape[:2]
        for canvas in card.find_elements(By.CSS_SELECTOR, ".compare canvas"):
            shown = canvas_pixels(driver, canvas)
            assert shown.shape[:2] == (height, width)  # under 1024 px: not scaled
            assert shown.std() > 10  # a photo, not a blank canvas
    # Move the divider: the before image is revealed up to it.
    divider = cards[0].find_element(By.CSS_SELECTOR, ".divider")
    set_value(driver, divider, "35")
    before = cards[0].find_element(By.CSS_SELECTOR, ".compare .before")
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
    wait.until(settled(4))
    assert driver.find_elements(By.CSS_SELECTOR, ".card")[3].get_attribute("data-state") == "done"

    shot = os.environ.get("LPTN_SERVE_SCREENSHOT")
    if shot:
        driver.save_screenshot(shot)

    button = cards[0].find_element(By.CSS_SELECTOR, ".download")
    assert button.text == "Download at 75%"
    button.click()
    downloaded = wait_for_download(downloads)
    assert downloaded.name == f"{photos[0].stem}-enhanced.png"
    status, _, api_result = post(
        server.url, photos[0].read_bytes(), "image/png", f"?strength={STRENGTH}"
    )
    assert status == 200
    assert downloaded.read_bytes() == api_result


def deep_tiff_and_heic(photo_paths: List[Path], tmp_path: Path) -> List[Path]:
    """A 16-bit TIFF of the first FiveK photo and, with the 'heif' extra, a HEIC of the
    second."""
    bgr16 = cv2.imread(str(photo_paths[0]), cv2.IMREAD_COLOR).astype(np.uint16) * 257
    bgr16[::3, ::2] += 77  # values an 8-bit image cannot hold
    tiff = tmp_path / "deep.tif"
    assert cv2.imwrite(str(tiff), bgr16)
    assert Image.open(tiff).format == "TIFF" and decode(tiff.read_bytes()).dtype == np.uint16
    files = [tiff]
    try:
        import pillow_heif
    except ImportError:
        pillow_heif = None  # the TIFF is still checked; the HEIC needs the 'heif' extra
    if pillow_heif is not None:
        heic = tmp_path / "phone.heic"
        rgb = np.asarray(Image.open(photo_paths[1]).convert("RGB"))
        pillow_heif.from_pillow(Image.fromarray(rgb)).save(heic, quality=90)
        files.append(heic)
    return files


def test_key_tiff_heic_previews_live_strength_and_download(
    keyed_server: Server, browser: tuple, photo_paths: List[Path], tmp_path: Path
) -> None:
    """On a server with an API key: the page asks for it, previews a 16-bit TIFF and a HEIC
    photo, blends a new strength without a request, and downloads the API's answer."""
    driver, downloads = browser
    files = deep_tiff_and_heic(photo_paths, tmp_path)
    driver.get(keyed_server.url + "/")
    wait = WebDriverWait(driver, 120)
    wait.until(lambda d: d.find_element(By.ID, "key-form").is_displayed())
    driver.find_element(By.ID, "api-key").send_keys(API_KEY)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
    assert driver.execute_script("return sessionStorage.getItem('lptn-serve-api-key')") == API_KEY
    driver.find_element(By.ID, "file-input").send_keys("\n".join(str(f) for f in files))
    wait.until(settled(len(files)))
    cards = driver.find_elements(By.CSS_SELECTOR, ".card")
    assert [c.get_attribute("data-state") for c in cards] == ["done"] * len(files)
    afters = [c.find_element(By.CSS_SELECTOR, ".compare .after") for c in cards]
    for card in cards:
        before = canvas_pixels(driver, card.find_element(By.CSS_SELECTOR, ".compare .before"))
        assert before.shape[1] > 0 and before.std() > 10  # decoded, not blank or broken
    full = [canvas_pixels(driver, canvas) for canvas in afters]

    requests = api_requests(driver)
    assert len(requests) == 2 * len(files)  # a preview as it is and enhanced, per photo
    images_done = get_json(keyed_server.url + "/healthz")["images_done"]
    strength = driver.find_element(By.ID, "strength")
    for value in ("0.6", "0.35"):
        set_value(driver, strength, value)
    assert driver.find_element(By.ID, "strength-value").text == "35%"
    blended = [canvas_pixels(driver, canvas) for canvas in afters]
    assert api_requests(driver) == requests  # no request for the new strength
    assert get_json(keyed_server.url + "/healthz")["images_done"] == images_done
    auth = {"Authorization": f"Bearer {API_KEY}"}
    for path, shown, at_full in zip(files, blended, full):
        assert np.abs(shown.astype(int) - at_full).mean() > 2  # the pixels changed
        # ... to what the server's own preview at that strength shows (the blend is linear).
        status, _, want = post(
            keyed_server.url,
            path.read_bytes(),
            "image/*",
            "?strength=0.35",
            headers=auth,
            path="/v1/preview",
        )
        assert status == 200
        assert np.abs(shown.astype(int) - decode(want)).max() <= 2

    for card, path, ext in zip(cards, files, ["tif", "jpg"]):
        for old in downloads.iterdir():
            old.unlink()
        card.find_element(By.CSS_SELECTOR, ".download").click()
        downloaded = wait_for_download(downloads)
        assert downloaded.name == f"{path.stem}-enhanced.{ext}"
        status, _, api_result = post(
            keyed_server.url, path.read_bytes(), "image/*", "?strength=0.35", headers=auth
        )
        assert status == 200
        assert downloaded.read_bytes() == api_result
        if ext == "tif":
            assert decode(api_result).dtype == np.uint16  # the download keeps 16 bits
