"""`sense serve`'s page in a real headless browser (issue 31): the server runs as the command
does, on a free loopback port; chromium types a query, uploads a file, records from its fake
microphone, and each hit list is the one SpeechIndex.search gives, each <audio> on its span.

Skipped, saying why, only where Debian's chromium and chromedriver are not installed
(`.ci/run` installs them: apt-get install chromium chromium-driver)."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from serve_fixture import SENTENCES, build_index, export, write_corpus

import sense
from sense.index import load_index

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromedriver (apt-get install chromium chromium-driver)",
)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: The server runs this checkout's sense, as the test does.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHONPATH = os.environ.get("PYTHONPATH", "")
SERVER_START_S = 300
WAIT_S = 60
URL_LINE = re.compile(r"^serving .* on (http://\S+/)$")
#: A phrase in French (the index's sentences are English and French).
QUERY = "un chat dort"
FILE_NUMBERS = {f"clips/clip{i}.wav": i for i in range(4)} | {"clips/talk.wav": 4}


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_w2v_bert, tiny_xlmr):
    """``(url, index, model, corpus)``: ``sense serve`` of the tiny index, in a subprocess."""
    root = tmp_path_factory.mktemp("serve-browser")
    model_dir = export(str(root / "model"), tiny_w2v_bert, tiny_xlmr)
    corpus = root / "corpus"
    write_corpus(corpus)
    folder = build_index(corpus, model_dir)
    log = open(root / "server.log", "w+", encoding="utf-8")  # noqa: SIM115 - read at the end
    argv = [
        sys.executable,
        "-m",
        "sense.cli",
        "serve",
        folder,
        "--port",
        "0",
        "--device",
        "cpu",
        "-q",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, PYTHONPATH]))}
    server = subprocess.Popen(
        argv, cwd=corpus, stdout=subprocess.PIPE, stderr=log, text=True, env=env
    )
    try:
        url = _wait_for_url(server, log)
        yield url, load_index(folder), sense.load(model_dir, device="cpu"), corpus
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _wait_for_url(server, log) -> str:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line and server.poll() is not None:
            log.seek(0)
            pytest.fail(f"sense serve exited with {server.returncode}:\n{log.read()[-3000:]}")
        match = URL_LINE.match(line.strip())
        if match:
            return match.group(1)
    pytest.fail("sense serve printed no URL")


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--window-size=1100,900",
        "--use-fake-ui-for-media-stream",  # the microphone is allowed without asking
        "--use-fake-device-for-media-stream",  # and is a generated beep
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    yield driver
    driver.quit()


def open_page(browser, url):
    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(
        lambda d: "entries" in d.find_element(By.ID, "index-info").text
    )


def wait_for_search(browser) -> str:
    """The page's state once a search has ended: "done" or "error"."""
    WebDriverWait(browser, WAIT_S).until(
        lambda d: (
            d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error")
        )
    )
    return browser.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def shown_hits(browser) -> list[dict]:
    """Each hit the page lists: its id, the src of its <audio>, its text."""
    hits = []
    for item in browser.find_elements(By.CSS_SELECTOR, "#hits li.hit"):
        audio = item.find_elements(By.TAG_NAME, "audio")
        text = item.find_elements(By.CSS_SELECTOR, "p.text")
        hits.append(
            {
                "id": item.get_attribute("data-id"),
                "src": audio[0].get_attribute("src") if audio else None,
                "text": text[0].text if text else None,
            }
        )
    return hits


def expected_hits(url: str, hits: list[dict]) -> list[dict]:
    """What the page must show for ``hits`` of SpeechIndex.search."""
    return [
        {
            "id": hit["id"],
            "src": f"{url}audio/{FILE_NUMBERS[hit['path']]}#t={hit['start']:g},{hit['end']:g}"
            if hit["kind"] == "audio"
            else None,
            "text": hit.get("text"),
        }
        for hit in hits
    ]


def test_a_typed_query_lists_the_hits_of_speech_index_search_each_audio_on_its_span(site, browser):
    url, index, model, _ = site
    open_page(browser, url)
    assert browser.find_element(By.ID, "index-info").text.startswith(
        "9 entries (7 audio, 2 text) · model "
    )
    browser.find_element(By.ID, "query").send_keys(QUERY)
    browser.find_element(By.ID, "search").click()
    assert wait_for_search(browser) == "done"
    expected = index.search(model.encode_text([QUERY]), k=5)[0]
    shown = shown_hits(browser)
    assert shown == expected_hits(url, expected)
    assert [hit["id"] for hit in shown] == [
        "sentences.txt:1", "sentences.txt:2", "clips/clip3.wav", "clips/clip1.wav",
        "clips/talk.wav#2",
    ]  # fmt: skip
    assert shown[1]["text"] == SENTENCES[1]
    assert shown[4]["src"] == f"{url}audio/4#t=1,3"
    # the browser loads the recording (Range requests) and stands at the span's start
    audio = browser.find_elements(By.CSS_SELECTOR, "#hits audio")[-1]
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.execute_script("return arguments[0].readyState", audio) >= 1
    )
    assert browser.execute_script("return arguments[0].currentTime", audio) == 1.0
    assert browser.execute_script("return arguments[0].duration", audio) == 4.0


def test_filters_and_an_error_are_shown(site, browser):
    url, index, model, _ = site
    open_page(browser, url)
    browser.find_element(By.ID, "query").send_keys(QUERY)
    browser.find_element(By.CSS_SELECTOR, "#kind option[value=audio]").click()
    browser.find_element(By.CSS_SELECTOR, "#language option[value=fr]").click()
    browser.find_element(By.ID, "search").click()
    assert wait_for_search(browser) == "done"
    assert [hit["id"] for hit in shown_hits(browser)] == ["clips/talk.wav#2", "clips/clip0.wav"]
    query = browser.find_element(By.ID, "query")
    query.clear()
    query.send_keys(" ")
    browser.find_element(By.ID, "search").click()
    assert wait_for_search(browser) == "error"
    status = browser.find_element(By.ID, "status")
    assert status.text == "empty query: type what to search for (in any language)"
    assert status.get_attribute("class") == "error" and shown_hits(browser) == []


def test_an_uploaded_file_is_searched_as_its_embedding(site, browser):
    url, index, model, corpus = site
    open_page(browser, url)
    path = corpus / "clips" / "clip2.wav"
    browser.find_element(By.ID, "audio-file").send_keys(str(path))
    assert wait_for_search(browser) == "done"
    expected = index.search(model.encode_file(str(path))[None], k=5)[0]
    assert shown_hits(browser) == expected_hits(url, expected)
    assert shown_hits(browser)[0]["id"] == "clips/clip2.wav"


def test_a_recording_from_the_microphone_is_decoded_and_searched(site, browser):
    url, _, _, _ = site
    open_page(browser, url)
    record = browser.find_element(By.ID, "record")
    record.click()
    WebDriverWait(browser, WAIT_S).until(lambda d: record.text == "■ Stop")
    time.sleep(1.5)
    record.click()
    state = wait_for_search(browser)
    status = browser.find_element(By.ID, "status").text
    assert state == "done", status
    assert status.startswith("5 hit(s) for recording.webm among 9 entries"), status
    assert len(shown_hits(browser)) == 5 and record.text == "● Record"
