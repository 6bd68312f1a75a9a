"""End to end: the page of `tinygpt.serve` in headless Chromium.

Starts `run_server` (bundled model) in a subprocess on a free port of 127.0.0.1, opens `/` in Debian's Chromium
(driven through the DevTools protocol with the client of tests/test_browser.py), types a prompt, presses Generate
and waits for the streamed story and its final status line. Skipped with a message where Chromium is missing."""
import os, subprocess, sys, time
from pathlib import Path
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_browser import CHROMIUM, _free_port, _kill, _wait, browser   # noqa: F401 (browser is a fixture)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian/Ubuntu: `apt-get install -y chromium`): "
                                                          "the page check is skipped")
httpx = pytest.importorskip("httpx", reason='the serve extra is not installed (pip install "tinygpt[serve]")')
pytest.importorskip("fastapi", reason='the serve extra is not installed (pip install "tinygpt[serve]")')
ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def server(tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", f"from tinygpt.serve import run_server; run_server(port={port})"],
                            env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("the server to answer", lambda: proc.poll() is None and httpx.get(url + "/health", timeout=2, trust_env=False).status_code == 200, 120)
        yield url
    finally: _kill(proc); log.close()

def test_page_streams_a_story(server, browser):
    dt = browser
    dt.send("Page.enable")
    dt.send("Page.navigate", url=server + "/")
    _wait("the page and its model list", lambda: dt.js("document.querySelectorAll('#model option').length") >= 1, 60)
    prompt = "The little cat"
    dt.js("(() => { const p = document.getElementById('prompt'); p.focus(); p.value = ''; return true })()")
    dt.send("Input.insertText", text=prompt)                                     # typed, as a person would
    dt.js("document.getElementById('max_new_tokens').value = '40'; document.getElementById('seed').value = '1'; true")
    assert dt.js("document.getElementById('prompt').value") == prompt
    dt.js("document.getElementById('go').click(); true")
    _wait("the streamed story and its status line", lambda: "tokens/s" in (dt.js("document.getElementById('status').textContent") or ""), 120)
    story = dt.js("document.getElementById('story').textContent")
    status = dt.js("document.getElementById('status').textContent")
    assert story.startswith(prompt) and len(story) > len(prompt) + 20, story
    assert "finished: " in status and "seed 1" in status, status
    assert dt.js("document.getElementById('go').disabled") is False
