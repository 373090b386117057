"""The page of ``m2unet serve`` in a real browser: headless Chromium (Debian's chromium + chromium-driver) via selenium.

Opens the page, uploads the bundled photograph, waits for the overlay, counts vessel pixels on the canvases, moves
the threshold slider with the keyboard and checks that the binary map changes, and saves a screenshot: with
M2UNET_UPDATE_SCREENSHOT=1 into docs/serve.png (the README's picture), else into the test's temporary folder, so
that a test run leaves the working tree as it was. In CI (CI=true) a missing browser is a failure, not a skip: .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from m2unet.weights import pretrained_path, read_metadata
from serve_server import free_port, start_server

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "chase_db1_Image_11L.jpg"
README_SCREENSHOT = REPO / "docs" / "serve.png"

COUNT_JS = """
const section = document.querySelector(arguments[0]);
const read = (canvas) => canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
const binary = read(section.querySelector('canvas.binary')), overlay = read(section.querySelector('canvas.overlay'));
let white = 0, green = 0;
for (let i = 0; i < binary.length; i += 4) {
  white += binary[i] === 255;
  green += overlay[i + 1] >= overlay[i] + 100 && overlay[i + 1] >= overlay[i + 2] + 100;
}
return {white, green, pixels: binary.length / 4, shown: section.dataset.vesselPixels,
        threshold: Number(section.querySelector('input.threshold').value)};
"""


def measurements_installed() -> bool:
    from m2unet.serve.work import measure_function

    return not isinstance(measure_function(), str)


def browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        message = "headless Chromium needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1500,1050",
                     "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(export_cache):
    port = free_port()
    process = start_server(port, "--workers", "2")
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_page_segments_and_the_slider_redraws(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: "backend onnxruntime" in d.find_element(By.ID, "server").text)
    browser.find_element(By.ID, "files").send_keys(str(SAMPLE))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "section.result.done"))
    first = browser.execute_script(COUNT_JS, "section.result.done")
    assert first["pixels"] == 999 * 960
    stored = read_metadata(pretrained_path("universal"))["threshold"]
    assert first["threshold"] == pytest.approx(stored, abs=1e-3)  # starts at the stored threshold of auto's model, universal
    assert 0.04 < first["white"] / first["pixels"] < 0.15  # vessels, not an empty or a full map
    assert abs(first["green"] - first["white"]) < 0.01 * first["pixels"]  # the overlay shows the same vessels in green
    assert int(first["shown"]) == first["white"]
    status = browser.find_element(By.CSS_SELECTOR, "section.result.done .status").text
    assert "model universal" in status and "segment" in status and "999×960" in status

    slider = browser.find_element(By.CSS_SELECTOR, "section.result.done input.threshold")
    slider.send_keys(*[Keys.ARROW_LEFT] * 300)  # 300 steps of 0.001: down by 0.3
    wait.until(lambda d: d.execute_script(COUNT_JS, "section.result.done")["threshold"] < stored - 0.29)
    wait.until(lambda d: d.execute_script(COUNT_JS, "section.result.done")["white"] != first["white"])
    lower = browser.execute_script(COUNT_JS, "section.result.done")
    assert lower["threshold"] == pytest.approx(stored - 0.3, abs=1e-3) and lower["white"] > first["white"] * 1.1
    assert browser.find_element(By.CSS_SELECTOR, "section.result.done output.threshold-value").text == f"{stored - 0.3:.3f}"
    slider.send_keys(*[Keys.ARROW_LEFT] * 50)  # 0.35 below the stored threshold, about where the screenshot shows it
    wait.until(lambda d: d.execute_script(COUNT_JS, "section.result.done")["threshold"] < stored - 0.34)
    links = [a.get_attribute("download") for a in browser.find_elements(By.CSS_SELECTOR, "section.result.done .downloads a")]
    assert links == ["chase_db1_Image_11L_probability.png", "chase_db1_Image_11L_vessels.png", "chase_db1_Image_11L_overlay.png",
                     "chase_db1_Image_11L.json"]
    if measurements_installed():  # the measurement stage (m2unet.measure): the table fills in for the slider's threshold
        browser.find_element(By.CSS_SELECTOR, "section.result.done button.measure").click()
        wait.until(lambda d: f"{stored - 0.35:.3f}" in d.find_element(By.CSS_SELECTOR, "section.result.done table.summary").text)
        table = browser.find_element(By.CSS_SELECTOR, "section.result.done table.summary").text
        assert "vessel_density" in table and "fractal_dimension" in table and "chase_db1_Image_11L.jpg" in table
    from m2unet.data.io import write_atomic

    screenshot = README_SCREENSHOT if os.environ.get("M2UNET_UPDATE_SCREENSHOT") == "1" else tmp_path / "serve.png"
    write_atomic(screenshot, lambda tmp: browser.save_screenshot(tmp))
    assert screenshot.stat().st_size > 50_000


def test_page_shows_a_bad_file_in_one_line(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photograph\n")
    browser.get(server + "/")
    browser.find_element(By.ID, "files").send_keys(str(bad))
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "section.result.failed"))
    assert browser.find_element(By.CSS_SELECTOR, "section.result.failed .status").text == "notes.jpg: not an image file (unrecognised format)"


def test_page_offers_a_served_model_and_uses_it(browser, clinic, export_cache):
    """`m2unet serve --weights clinic=FILE`: the page lists the calibrated model, chooses it and segments with it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    path, photo = clinic
    port = free_port()
    process = start_server(port, "--weights", f"clinic={path}")
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 90)
        wait.until(lambda d: "default clinic" in d.find_element(By.ID, "server").text)
        chosen = Select(browser.find_element(By.ID, "model")).first_selected_option
        assert chosen.get_attribute("value") == "clinic"
        assert chosen.text == "clinic (clinic.safetensors, calibrated on 2 photographs)"
        browser.find_element(By.ID, "files").send_keys(str(photo))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "section.result.done"))
        shown = browser.execute_script(COUNT_JS, "section.result.done")
        assert shown["pixels"] == 300 * 400 and shown["threshold"] == pytest.approx(read_metadata(path)["threshold"], abs=1e-3)
        assert "model clinic" in browser.find_element(By.CSS_SELECTOR, "section.result.done .status").text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
