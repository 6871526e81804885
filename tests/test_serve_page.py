"""The page of ``phototag serve`` in a real browser: Debian's Chromium driven by Selenium
through chromium-driver. Each view is kept as a screenshot in test-artifacts/serve/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import jpeg_bytes, sample
from metadata_readers import both
from PIL import Image
from serving import Server, start

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "serve"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, Path, dict[str, str]]]:
    home = tmp_path_factory.mktemp("page-home")
    env = {"PHOTOTAG_INDEX": str(home / "index.sqlite"), "XDG_DATA_HOME": str(home / "data"),
           "PHOTOTAG_CACHE": str(home / "cache"), "PHOTOTAG_ALBUMS": str(home / "albums"),
           "PHOTOTAG_CONFIG": str(home / "config.toml")}  # fmt: skip
    lib = tmp_path_factory.mktemp("page-lib")
    (lib / "coffee.jpg").write_bytes(jpeg_bytes(sample("coffee")))
    Image.fromarray(sample("chelsea")).save(lib / "cat.png")
    r = subprocess.run([sys.executable, "-m", "phototag", "scan", str(lib)], env={**os.environ, **env},
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    s = start(env, log=home / "serve.log")
    yield s, lib, env
    assert s.stop() == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "scripts/test.sh installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-quic"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def test_browse_search_and_correct_in_a_browser(
    served: tuple[Server, Path, dict[str, str]], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server, lib, _ = served
    assert isinstance(browser, WebDriver)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 60)

    browser.get(server.url + "/")
    wait.until(ec.presence_of_element_located((By.ID, "tags")))
    browser.save_screenshot(str(ARTIFACTS / "tags.png"))
    assert "animal/cat" in browser.find_element(By.ID, "tags").text

    # Search falls back to the tag of that name without an open-vocabulary model.
    box = browser.find_element(By.ID, "search")
    box.send_keys("cat")
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".grid a.thumb")))
    browser.save_screenshot(str(ARTIFACTS / "search.png"))
    thumbs = browser.find_elements(By.CSS_SELECTOR, ".grid a.thumb img")
    assert [t.get_attribute("alt").rsplit("/", 1)[-1] for t in thumbs] == ["cat.png"]

    # Open the photo, remove a wrong tag, add one.
    thumbs[0].click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#photo-tags li")))
    browser.save_screenshot(str(ARTIFACTS / "photo.png"))
    target = "animal/cat"
    browser.find_element(
        By.CSS_SELECTOR, f'#photo-tags li[data-path="{target}"] button.remove'
    ).click()
    wait.until(
        ec.invisibility_of_element_located(
            (By.CSS_SELECTOR, f'#photo-tags li[data-path="{target}"]')
        )
    )
    browser.find_element(By.ID, "new-tag").send_keys("Mittens")
    browser.find_element(By.CSS_SELECTOR, "#add-tag button").click()
    wait.until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, '#photo-tags li[data-path="user/Mittens"]')
        )
    )
    browser.save_screenshot(str(ARTIFACTS / "corrected.png"))

    # The files say the same, read by exiftool and exiv2.
    keywords = both(lib / "cat.png.xmp")
    assert "Mittens" in keywords["dc:subject"]
    assert "phototag|animal|cat" not in keywords["lr:hierarchicalSubject"]
