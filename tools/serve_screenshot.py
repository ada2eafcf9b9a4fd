"""The screenshot of `sense serve`'s page in docs (docs/img/serve.png), taken in headless chromium.

Run from the folder `sense index` ran in (after `make demo`, the repository)::

    sense index -m demo_output/train/model demo_output/examples/clips \\
        demo_output/examples/sentences.txt -o demo.index
    python tools/serve_screenshot.py demo.index "¿Quién vende un libro verde?" docs/img/serve.png
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH, HEIGHT = 900, 590
WAIT_S = 120


def screenshot(index: str, query: str, output: str) -> None:
    argv = [sys.executable, "-m", "sense.cli", "serve", index, "--port", "0", "-q"]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r"on (http://\S+/)", server.stdout.readline()).group(1)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
        try:
            metrics = {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            driver.get(url)
            wait = WebDriverWait(driver, WAIT_S)
            wait.until(lambda d: "entries" in d.find_element(By.ID, "index-info").text)
            driver.find_element(By.ID, "query").send_keys(query)
            driver.find_element(By.ID, "search").click()
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state"))
            wait.until(
                lambda d: d.execute_script(
                    "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1)"
                )
            )
            time.sleep(0.5)  # the players draw their time
            print(driver.find_element(By.ID, "status").text)
            driver.save_screenshot(output)
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index")
    parser.add_argument("query")
    parser.add_argument("output")
    args = parser.parse_args()
    screenshot(args.index, args.query, args.output)


if __name__ == "__main__":
    main()
