"""The chat page at / in headless Chromium (Debian's chromium + chromium-driver, driven by the
pinned selenium): it lists the model, streams a reply, and shows a tool call."""
import json
import os
import shutil

import pytest

from conftest import Server

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip("chromium / chromium-driver not installed (scripts/install-deps.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
              "--disable-sync", "--no-first-run", "--window-size=1100,800"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def test_chat_page_streams_a_reply_and_shows_tool_calls(browser):
    s = Server("--ctx-size", "2048", api_key="page-key")
    try:
        browser.get(s.url + "/")
        wait = WebDriverWait(browser, 30)
        browser.find_element(By.ID, "key").send_keys("page-key")
        browser.execute_script("document.getElementById('key').dispatchEvent(new Event('change')); loadModel();")
        wait.until(lambda d: "tiny-qwen" in d.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "temperature").clear()
        browser.find_element(By.ID, "temperature").send_keys("0")
        browser.find_element(By.ID, "max_tokens").clear()
        browser.find_element(By.ID, "max_tokens").send_keys("12")
        browser.find_element(By.ID, "input").send_keys("Hello there")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant[data-done='1']"))
        reply = browser.find_element(By.CSS_SELECTOR, ".assistant .body").text
        assert reply and "finish: length" in browser.find_element(By.CSS_SELECTOR, ".assistant .meta").text
        # The same request over the API gives the same text (the page streamed all of it).
        st, j = s.request("POST", "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "Hello there"}], "temperature": 0, "max_tokens": 12})
        assert st == 200 and j["choices"][0]["message"]["content"].strip() == reply.strip()

        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}]
        extra = {"tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                 "parallel_tool_calls": False, "logit_bias": {"151658": 100}}
        browser.execute_script("document.querySelector('details').open = true;"
                               "document.getElementById('extra').value = arguments[0];", json.dumps(extra))
        browser.find_element(By.ID, "input").send_keys("Weather in Paris?")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".assistant[data-done='1']")) == 2)
        call = browser.find_elements(By.CSS_SELECTOR, ".assistant")[1].find_element(By.CSS_SELECTOR, ".tool-call").text
        assert call == "tool call: get_weather({})"
        assert "finish: tool_calls" in browser.find_elements(By.CSS_SELECTOR, ".assistant .meta")[1].text
        browser.save_screenshot(os.path.join(os.path.dirname(os.environ.get("QCODER_TINY_MODEL", "/tmp/x")),
                                             "chat-page.png"))
    finally:
        assert s.stop() == 0
