"""The chat page (tinyllm/serve/static/index.html) in a real headless Chromium driven by selenium:
a typed question's streamed answer equals the API's greedy answer; a server error is shown."""

from __future__ import annotations

import shutil
import tempfile

import httpx
import pytest
from serve_helpers import ServeProcess, shared_qa_checkpoint

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)), reason="Debian chromium + chromedriver not installed"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ServeProcess(shared_qa_checkpoint(tmp_path_factory), "--max_batch", "4")
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tinyllm-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def ask(browser, question: str, max_tokens: int):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    body = browser.find_element(By.TAG_NAME, "body")
    asked = int(body.get_attribute("data-asked") or 0)
    box = browser.find_element(By.ID, "max_tokens")
    box.clear()
    box.send_keys(str(max_tokens))
    browser.find_element(By.ID, "prompt").send_keys(question)
    browser.find_element(By.ID, "send").click()
    wait.until(lambda d: int(body.get_attribute("data-asked") or 0) == asked + 1)


def test_page_streams_the_greedy_answer_and_shows_errors(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    question = "What is tinyllm?"
    want = httpx.post(
        server.api + "/chat/completions",
        json={
            "model": "best.pt",
            "messages": [{"role": "user", "content": question}],
            "temperature": 0,
            "max_tokens": 30,
        },
        timeout=60,
    ).json()["choices"][0]["message"]["content"]
    ask(browser, question, 30)
    answers = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")
    assert len(answers) == 1
    shown = browser.execute_script(
        "return arguments[0].firstChild ? arguments[0].firstChild.textContent : ''", answers[0]
    )
    assert shown == want
    assert not browser.find_element(By.ID, "error").is_displayed()

    ask(browser, "and now a question too long for the context", 100000)  # the server answers 400
    err = browser.find_element(By.ID, "error")
    assert err.is_displayed() and "400" in err.text and "max_tokens" in err.text
    assert len(browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == 1  # no empty answer left behind
