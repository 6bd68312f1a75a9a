"""End to end: JupyterLab served on 127.0.0.1, a notebook that builds the sampling panel, opened in headless Chromium.

The test starts JupyterLab (random free port, random token, everything in a temp folder) and Chromium (Debian's
`chromium` package), drives the page through the Chrome DevTools Protocol (a websocket; `websocket-client` comes
with jupyter_server), runs the notebook with JupyterLab's own "run all cells" command, checks that the panel's
widgets render, clicks Generate in the browser and waits for the story and its tokens/s to appear.
Skipped with a message where Chromium is not installed."""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium") if p and Path(p).exists()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian/Ubuntu: `apt-get install -y chromium`): "
                                                          "the JupyterLab browser check is skipped")
websocket = pytest.importorskip("websocket", reason="websocket-client (a jupyter_server dependency) is needed to drive Chromium")
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install -e \".[dev]\")")

NOTEBOOK_CELLS = [
    "import torch\nfrom tinygpt.model import GPT, GPTConfig\nfrom tinygpt.tokenizer import get_tokenizer\nfrom tinygpt.widgets import SamplingPanel, LookInsidePanel",
    "tok = get_tokenizer()\ntorch.manual_seed(0)\n"
    "model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32, dropout=0.0))",
    "panel = SamplingPanel(model, tok, prompt='Once upon a time')\npanel.max_new_tokens.value = 24\npanel",
    "look = LookInsidePanel(model, tok, prompt='The cat sat on the mat')\nlook",
]

def _free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def _wait(what, fn, timeout, every=0.5):
    "Poll `fn` until it returns something truthy; fail with `what` after `timeout` seconds."
    end, last = time.time() + timeout, None
    while time.time() < end:
        try:
            last = fn()
            if last: return last
        except Exception as e: last = e
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

def _kill(proc):
    "Stop a process started here (and its children: it leads its own session)."
    if proc.poll() is None:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: return
        try: proc.wait(10)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait(10)

class DevTools:
    "A minimal Chrome DevTools Protocol client for one page."
    def __init__(self, ws_url): self.ws, self.n = websocket.create_connection(ws_url, timeout=60, suppress_origin=True), 0
    def send(self, method, **params):
        self.n += 1; self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
    def js(self, expr):
        r = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r: raise RuntimeError(r["exceptionDetails"].get("exception", {}).get("description", r["exceptionDetails"]))
        return r["result"].get("value")
    def close(self): self.ws.close()

@pytest.fixture
def lab(tmp_path):
    "JupyterLab on 127.0.0.1 serving a folder with the panel notebook; yields (base_url, token)."
    import nbformat
    work = tmp_path / "work"; work.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, work / "panel.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "IPYTHONDIR": str(tmp_path / "ipython"), "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "jupyter.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
                             "--ServerApp.allow_remote_access=False", "--allow-root"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            if proc.poll() is not None: raise AssertionError(f"JupyterLab exited ({proc.returncode}):\n" + (tmp_path / "jupyter.log").read_text()[-3000:])
            return urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).status == 200
        try: _wait("JupyterLab to answer", up, 120)
        except TimeoutError as e:
            if proc.poll() is not None: up()
            raise
        yield base, token, tmp_path
    finally:
        _kill(proc); log.close()

@pytest.fixture
def browser(tmp_path):
    "Headless Chromium with a temp profile and a DevTools port; yields a DevTools client for its page."
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                             "--remote-allow-origins=*", "--window-size=1400,1000", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "chromium.log", "w"), start_new_session=True)
    try:
        port = _wait("Chromium's DevTools port", lambda: (profile / "DevToolsActivePort").read_text().split()[0], 60)
        pages = _wait("a Chromium page", lambda: [t for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5))
                                                  if t["type"] == "page"], 30)
        dt = DevTools(pages[0]["webSocketDebuggerUrl"])
        try: yield dt
        finally: dt.close()
    finally: _kill(proc)

BUTTONS = "Array.from(document.querySelectorAll('.jupyter-widgets button')).map(b => b.textContent.trim())"
NOTEBOOK = "Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.sessionContext && w.content && w.content.widgets)"
KERNEL = f"(() => {{ const w = {NOTEBOOK}; return w ? w.sessionContext.kernelDisplayStatus : null }})()"
# headless Chromium has no window focus, so JupyterLab has no "current" notebook until we activate it
RUN_ALL = (f"(() => {{ const w = {NOTEBOOK}; window.jupyterapp.shell.activateById(w.id);"
           " return window.jupyterapp.commands.execute('notebook:run-all-cells').then(() => true) })()")

def test_panels_render_and_work_in_jupyterlab(lab, browser):
    base, token, tmp = lab
    dt = browser
    shot = tmp / "jupyterlab.png"
    def info():
        try: open(shot, "wb").write(__import__("base64").b64decode(dt.send("Page.captureScreenshot")["data"]))
        except Exception: pass
        text = (dt.js("document.body ? document.body.innerText : ''") or "")[-1500:]
        return f"\nscreenshot: {shot}\njupyter log: {tmp / 'jupyter.log'}\npage text (end): {text}"
    dt.send("Page.enable")
    dt.send("Page.navigate", url=f"{base}/lab/tree/panel.ipynb?token={token}")
    try:
        _wait("JupyterLab to open the notebook", lambda: dt.js("!!(window.jupyterapp && document.querySelector('.jp-NotebookPanel .jp-Cell'))"), 180)
        _wait("the kernel to be idle", lambda: dt.js(KERNEL) == "idle", 180)
        dt.js(RUN_ALL)
        buttons = _wait("the panels' buttons", lambda: (b := dt.js(BUTTONS)) and {"Generate", "Stop", "Load", "Analyze"} <= set(b) and b, 240)
        n_sliders = dt.js("document.querySelectorAll('.jupyter-widgets.widget-slider').length")
        options = dt.js("Array.from(document.querySelectorAll('.jupyter-widgets select option')).map(o => o.textContent.replace(/\u00a0/g, ' '))")
        assert n_sliders >= 4, f"expected 4 sliders, found {n_sliders}" + info()
        assert "bundled default" in options and "local checkpoint folder" in options, options
        assert dt.js("Array.from(document.querySelectorAll('.jupyter-widgets textarea')).some(t => t.value === 'Once upon a time')"), "no prompt box" + info()
        dt.js(f"Array.from(document.querySelectorAll('.jupyter-widgets button')).find(b => b.textContent.trim() === 'Generate').click(); true")
        status = _wait("the story and its speed", lambda: (t := dt.js("document.body.innerText")) and "tokens/s" in t and t, 120)
        assert "Once upon a time" in status
        dt.js("Array.from(document.querySelectorAll('.jupyter-widgets button')).find(b => b.textContent.trim() === 'Analyze').click(); true")
        _wait("the look-inside pictures", lambda: dt.js("Array.from(document.querySelectorAll('.jupyter-widgets img'))"
                                                        ".filter(i => i.naturalWidth > 100).length") >= 2, 120)
        assert "dense model: no experts" in dt.js("document.body.innerText").replace("\u00a0", " ")
        info()                                                       # keep a screenshot for a person to look at
    except (TimeoutError, RuntimeError) as e:
        raise AssertionError(f"{e}{info()}") from None
