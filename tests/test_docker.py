"""The Docker images of Dockerfile and compose.yaml, built and run here (marker `docker`; `.ci/run` starts a dockerd
for them). Skipped with a one-line reason where Docker cannot run.

Where no registry can be reached, the base is a local Debian bookworm with python3 made by `debootstrap` and imported
with `docker import` (kept as a tarball under ~/.cache/tinygpt-docker), or set TINYGPT_DOCKER_BASE=python:3.11-slim.
pip inside the build gets this machine's torch wheel and pip settings (CA bundle) through PIP_SETUP_URL: a
throw-away HTTP server on 127.0.0.1 that the build reaches with `--network host`. Containers use the host network only
and bind 127.0.0.1. Figures (build, start-up) are printed: run with `-s` to see them."""
import hashlib, http.client, http.server, io, json, os, re, secrets, shutil, socket, subprocess, sys, tarfile, tempfile, threading
import time, urllib.error, urllib.request
from functools import partial
from pathlib import Path
import pytest

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("TINYGPT_DOCKER_CACHE", Path.home() / ".cache" / "tinygpt-docker"))
BASE_TAG = "tinygpt-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
API_TAG, LAB_TAG = "tinygpt-test:api", "tinygpt-test:lab"
LESSON = "00_tokenizer.ipynb"
PIP_SETUP_PORT = int(os.environ.get("TINYGPT_DOCKER_PIP_PORT", 47615))

def _sh(*cmd, check=True, timeout=1800, **kw):
    "Run a command, capturing text output; a failure shows the command's last output lines."
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(map(str, cmd[:4]))} ... failed ({r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    return r

def _docker_problem():
    if not shutil.which("docker"): return "no docker client"
    try: r = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired: return "docker info timed out"
    return None if r.returncode == 0 else "no Docker daemon answers (start dockerd, as .ci/run does)"

if (_why := _docker_problem()): pytest.skip(f"Docker cannot run here: {_why}", allow_module_level=True)

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def _get(url, headers=None, data=None, timeout=10):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r: return r.status, r.headers.get("content-type", ""), r.read()

def _wait_http(url, container, timeout=180, headers=None):
    "Seconds until `url` answers 200; fails with the container's log if it stops or never answers."
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if _get(url, headers, timeout=5)[0] == 200: return time.monotonic() - t0
        except (urllib.error.URLError, http.client.HTTPException, OSError): pass  # not up (or not ours) yet
        if _sh("docker", "inspect", "-f", "{{.State.Running}}", container, check=False).stdout.strip() != "true": break
        time.sleep(0.5)
    log = _sh("docker", "logs", "--tail", "40", container, check=False)
    raise AssertionError(f"{url} did not answer within {timeout} s:\n{log.stdout}{log.stderr}")

# ---- the base image ----
def _debootstrap_base(tarball):
    "A minimal Debian bookworm with python3 and venv, as a tarball for `docker import`."
    if os.geteuid() != 0 or not shutil.which("debootstrap"): pytest.skip("no base image: debootstrap needs root")
    with tempfile.TemporaryDirectory() as d:
        rootfs = Path(d) / "rootfs"
        _sh("debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", rootfs,
            "http://deb.debian.org/debian", timeout=1200)
        for junk in ["var/cache/apt/archives", "var/lib/apt/lists"]:
            for p in (rootfs / junk).glob("*"):
                if p.is_file(): p.unlink()
        for p in (rootfs / "var/cache/apt").glob("*.bin"): p.unlink()
        tarball.parent.mkdir(parents=True, exist_ok=True)
        tmp = tarball.with_suffix(".part")
        _sh("tar", "-C", rootfs, "--numeric-owner", "-cf", tmp, ".")
        tmp.rename(tarball)

@pytest.fixture(scope="module")
def base_image():
    "TINYGPT_DOCKER_BASE, else the local debootstrap base (kept in the daemon and as a tarball in CACHE)."
    if os.environ.get("TINYGPT_DOCKER_BASE"): return os.environ["TINYGPT_DOCKER_BASE"]
    if _sh("docker", "image", "inspect", BASE_TAG, check=False).returncode == 0: return BASE_TAG
    tarball = CACHE / f"bookworm-{BASE_PACKAGES.replace(',', '-')}.tar"
    t0 = time.monotonic()
    if not tarball.exists(): _debootstrap_base(tarball)
    _sh("docker", "import", "-c", "CMD [\"python3\"]", tarball, BASE_TAG)
    print(f"\nbase image {BASE_TAG} made in {time.monotonic() - t0:.0f} s")
    return BASE_TAG

# ---- pip settings for the build, served on 127.0.0.1 only while the images build ----
def _host_ca_bundle():
    for c in [os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"]:
        if c and Path(c).is_file(): return Path(c)

def _torch_wheel():
    "This machine's torch as a wheel (from pip's own configuration here, e.g. a local wheel folder), cached."
    from importlib.metadata import version
    spec = f"torch=={version('torch')}"
    wheels = CACHE / "wheels"
    if not any(wheels.glob(f"torch-{version('torch')}-*.whl")):
        _sh(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", wheels, spec, timeout=1200)
    return spec, wheels

@pytest.fixture(scope="module")
def build_args():
    "Build arguments: torch pinned to this machine's wheel, and PIP_SETUP_URL serving pip.conf (+ the CA bundle)."
    spec, wheels = _torch_wheel()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "wheels").symlink_to(wheels)
        handler = partial(_QuietHandler, directory=str(d))
        # A fixed port: build arguments are part of the layer cache keys, so a new URL would rebuild every layer.
        try: srv = http.server.ThreadingHTTPServer(("127.0.0.1", PIP_SETUP_PORT), handler)
        except OSError:
            print(f"\nport {PIP_SETUP_PORT} is taken: the build cache is not used this time")
            srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        conf = f"[global]\nfind-links = {url}/wheels/\n"
        if (ca := _host_ca_bundle()):
            shutil.copy(ca, d / "ca.crt"); conf += "cert = /tmp/pip-setup/ca.crt\n"
        (d / "pip.conf").write_text(conf)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try: yield {"TORCH_INDEX": "https://pypi.org/simple", "TORCH_SPEC": spec, "PIP_SETUP_URL": url}
        finally: srv.shutdown(); srv.server_close()

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

def _build(base, args, target, tag):
    cmd = ["docker", "build", "--network", "host", "--target", target, "-t", tag, "--build-arg", f"BASE={base}"]
    for k, v in args.items(): cmd += ["--build-arg", f"{k}={v}"]
    t0 = time.monotonic()
    _sh(*cmd, str(ROOT), env={**os.environ, "DOCKER_CLI_HINTS": "false"}, timeout=2400)
    size = int(_sh("docker", "image", "inspect", "-f", "{{.Size}}", tag).stdout)
    print(f"\nimage {tag}: built in {time.monotonic() - t0:.0f} s, {size / 1e9:.2f} GB")
    return tag

@pytest.fixture(scope="module")
def api_image(base_image, build_args): return _build(base_image, build_args, "api", API_TAG)

@pytest.fixture(scope="module")
def lab_image(base_image, build_args): return _build(base_image, build_args, "lab", LAB_TAG)

# ---- running containers (host network, bound to 127.0.0.1) ----
class _Container:
    def __init__(self, image, *cmd, env=None):
        self.name = f"tinygpt-test-{secrets.token_hex(4)}"
        envs = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
        _sh("docker", "run", "-d", "--rm", "--network", "host", "--name", self.name, *envs, image, *cmd)
    def __enter__(self): return self
    def __exit__(self, *a): _sh("docker", "rm", "-f", self.name, check=False)

def _has_serve(image):
    return _sh("docker", "run", "--rm", "--network", "none", image, "tinygpt", "serve", "--help", check=False).returncode == 0

def _serve_command(image):
    "`tinygpt serve` on 127.0.0.1:$PORT, or (a package whose CLI has no serve yet) `tinygpt.serve.run_server`."
    if _has_serve(image): return 'exec tinygpt serve --host 127.0.0.1 --port "$PORT"'
    probe = _sh("docker", "run", "--rm", "--network", "none", image, "python", "-c", "import tinygpt.serve", check=False)
    if probe.returncode: return None
    print("\nnote: the CLI has no `serve` yet; the image is checked with tinygpt.serve.run_server")
    return ('exec python -c "import os; from tinygpt.serve import run_server; '
            'run_server(host=\'127.0.0.1\', port=int(os.environ[\'PORT\']))"')

def test_api_image_serves_the_bundled_model(api_image):
    size = int(_sh("docker", "image", "inspect", "-f", "{{.Size}}", api_image).stdout)
    assert size < 1.5e9, f"{size / 1e9:.2f} GB"
    if not (serve := _serve_command(api_image)):
        out = _sh("docker", "run", "--rm", "--network", "none", api_image, "tinygpt", "generate", "--prompt",
                  "Once upon a time", "--max-new-tokens", "8", "--seed", "0").stdout
        assert out.startswith("Once upon a time") and len(out) > len("Once upon a time")
        pytest.skip("no tinygpt.serve in this package yet: checked `tinygpt generate` in the image instead")
    port = _free_port()
    # The image's command with its port setting, on the loopback address of the host network.
    with _Container(api_image, "sh", "-c", serve, env={"PORT": port}) as c:
        startup = _wait_http(f"http://127.0.0.1:{port}/health", c.name)
        print(f"\napi container: first /health after {startup:.1f} s")
        status, ctype, body = _get(f"http://127.0.0.1:{port}/health")
        health = json.loads(body)
        assert status == 200 and "json" in ctype and health["status"] == "ok" and "default" in health["models"]
        req = json.dumps({"prompt": "Once upon a time", "max_new_tokens": 8, "seed": 0}).encode()
        status, ctype, body = _get(f"http://127.0.0.1:{port}/generate", {"Content-Type": "application/json"}, req,
                                   timeout=120)
        out = json.loads(body)
        assert status == 200 and isinstance(out["text"], str) and 1 <= out["n_tokens"] <= 8, out
        status, ctype, body = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "text/html" in ctype and b"<textarea" in body.lower()

def test_lab_image_opens_a_lesson(lab_image):
    port, token = _free_port(), secrets.token_hex(16)
    auth = {"Authorization": f"token {token}"}
    with _Container(lab_image, "sh", "-c", 'exec jupyter lab --ip=127.0.0.1 --port="$PORT" --no-browser',
                    env={"PORT": port, "JUPYTER_TOKEN": token}) as c:
        startup = _wait_http(f"http://127.0.0.1:{port}/api/status", c.name, headers=auth)
        print(f"\nlab container: JupyterLab answers after {startup:.1f} s")
        with pytest.raises(urllib.error.HTTPError):  # the token is required
            _get(f"http://127.0.0.1:{port}/api/contents/{LESSON}")
        status, _, body = _get(f"http://127.0.0.1:{port}/api/contents/{LESSON}", auth)
        nb = json.loads(body)
        assert status == 200 and nb["type"] == "notebook" and len(nb["content"]["cells"]) > 3
        assert any("tinygpt" in "".join(cell["source"]) for cell in nb["content"]["cells"])
        status, ctype, body = _get(f"http://127.0.0.1:{port}/lab/tree/{LESSON}", auth)
        assert status == 200 and "text/html" in ctype and b"JupyterLab" in body
        # the kernel has the package: the lessons' imports resolve inside the image
        r = _sh("docker", "exec", c.name, "python", "-c", "import tinygpt.model, tinygpt.data, fastcore, nbdev")
        assert r.returncode == 0
        # and the lesson runs top to bottom in the container's kernel (a copy, so the lesson itself stays as shipped)
        _sh("docker", "exec", c.name, "sh", "-c", f"cp {LESSON} /tmp/run.ipynb && jupyter nbconvert --to notebook "
            "--execute --ExecutePreprocessor.timeout=300 /tmp/run.ipynb --output /tmp/ran.ipynb", timeout=600)

@pytest.mark.parametrize("which", ["api", "lab"])
def test_images_run_as_a_normal_user(which, request):
    image = request.getfixturevalue(f"{which}_image")
    uid = _sh("docker", "run", "--rm", "--network", "none", image, "id", "-u").stdout.strip()
    assert uid != "0" and uid.isdigit()
    hf = _sh("docker", "run", "--rm", "--network", "none", image, "sh", "-c", 'test -w "$HF_HOME" && echo ok')
    assert hf.stdout.strip() == "ok"

def _secret_needles():
    "Byte strings that must not be in an image: lines of this machine's local CA certificates, the pip.conf line."
    needles = {b"/wheels/\ncert = /tmp/pip-setup/ca.crt"}  # the pip.conf that build_args serves
    for crt in Path("/usr/local/share/ca-certificates").glob("**/*.crt"):
        lines = [l for l in crt.read_bytes().splitlines() if re.fullmatch(rb"[A-Za-z0-9+/=]{64}", l)]
        needles.update(lines[len(lines) // 2:len(lines) // 2 + 1])  # one line from the middle of each certificate
    return needles

def _leaks(image):
    "Files of `image` that hold build-time pip settings or this machine's CA bundle (or its local certificates)."
    ca = _host_ca_bundle()
    host_ca = hashlib.sha256(ca.read_bytes()).hexdigest() if ca else None
    needles, found = _secret_needles(), []
    cid = _sh("docker", "create", image).stdout.strip()
    try:
        export = subprocess.Popen(["docker", "export", cid], stdout=subprocess.PIPE)
        with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
            for m in tar:
                if "pip-setup" in m.name or m.name.endswith("pip.conf"): found.append(m.name)
                if not m.isfile() or m.size > 50e6 or m.name.endswith((".so", ".whl")) and m.size > 1e6: continue
                data = tar.extractfile(m).read()
                if hashlib.sha256(data).hexdigest() == host_ca or any(n in data for n in needles): found.append(m.name)
        assert export.wait() == 0
    finally: _sh("docker", "rm", cid, check=False)
    return found

@pytest.mark.parametrize("which", ["api", "lab"])
def test_images_hold_no_build_secrets(which, request):
    image = request.getfixturevalue(f"{which}_image")
    history = _sh("docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert "BEGIN CERTIFICATE" not in history and "cert =" not in history
    env = json.loads(_sh("docker", "image", "inspect", "-f", "{{json .Config.Env}}", image).stdout)
    assert not [e for e in env if re.match(r"(PIP_|SSL_|REQUESTS_CA|CURL_CA)", e)], env
    assert not (found := _leaks(image)), f"build-time files or secrets in the image: {found[:10]}"

def test_the_secret_scan_finds_a_copied_ca_bundle(base_image):
    "The scan above can fail: an image with this machine's CA bundle copied in is caught."
    if not (ca := _host_ca_bundle()): pytest.skip("no CA bundle on this machine")
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(ca, Path(d) / "bundle.pem")
        (Path(d) / "Dockerfile").write_text(f"FROM {base_image}\nCOPY bundle.pem /usr/share/misc/bundle.pem\n")
        _sh("docker", "build", "-q", "-t", "tinygpt-test:leak", d)
    try: assert [n for n in _leaks("tinygpt-test:leak") if n.endswith("usr/share/misc/bundle.pem")]
    finally: _sh("docker", "rmi", "tinygpt-test:leak", check=False)

# ---- compose.yaml, with Compose v2 (`docker compose`) and Debian's docker-compose 1.29, whichever are here ----
def _composes():
    found = []
    if _sh("docker", "compose", "version", check=False).returncode == 0: found.append(("docker", "compose"))
    if shutil.which("docker-compose"): found.append(("docker-compose",))
    return found

@pytest.fixture(scope="module")
def compose(base_image, build_args, api_image):
    "A command line for one compose project here (local base, pip settings, a free port); removed afterwards."
    if not (cmds := _composes()): pytest.skip("no Docker Compose here (docker compose or docker-compose)")
    env = {**os.environ, "TINYGPT_BASE": base_image, "TINYGPT_TORCH_INDEX": build_args["TORCH_INDEX"],
           "TINYGPT_TORCH_SPEC": build_args["TORCH_SPEC"], "TINYGPT_PIP_SETUP_URL": build_args["PIP_SETUP_URL"],
           "API_PORT": str(_free_port()), "DEV_PORT": str(_free_port())}
    project = f"tinygpt-test-{secrets.token_hex(3)}"
    cmd = [*cmds[-1], "-p", project]
    yield lambda *a, **kw: _sh(*cmd, *a, env=env, cwd=ROOT, timeout=2400, **kw), env
    _sh(*cmd, "--profile", "dev", "down", "-v", "--remove-orphans", env=env, cwd=ROOT, check=False)

def test_compose_file_is_valid_for_each_compose():
    if not (cmds := _composes()): pytest.skip("no Docker Compose here (docker compose or docker-compose)")
    for cmd in cmds:
        services = _sh(*cmd, "--profile", "dev", "config", "--services", cwd=ROOT).stdout.split()
        assert sorted(services) == ["api", "api-dev", "lab"], (cmd, services)
        assert "profiles:" in _sh(*cmd, "--profile", "dev", "config", cwd=ROOT).stdout  # api-dev is opt-in
        assert "network_mode: host" in _sh(*cmd, "config", cwd=ROOT).stdout

def test_compose_up_builds_and_serves_with_a_persistent_cache(compose):
    run, env = compose
    t0 = time.monotonic()
    run("build", "api")
    print(f"\ncompose build api (cached layers): {time.monotonic() - t0:.0f} s")
    # the Hugging Face cache is a named volume: what one container writes there the next one reads
    run("run", "--rm", "--no-deps", "api", "sh", "-c", 'echo kept > "$HF_HOME/probe"')
    assert run("run", "--rm", "--no-deps", "api", "sh", "-c", 'cat "$HF_HOME/probe"').stdout.strip() == "kept"
    if not _has_serve("tinygpt:latest"): pytest.skip("`tinygpt serve` is not in this package yet: compose up not run")
    run("up", "-d", "api")
    port = env["API_PORT"]
    names = run("ps", "-q", "api").stdout.split()
    _wait_http(f"http://127.0.0.1:{port}/health", names[0])
    assert json.loads(_get(f"http://127.0.0.1:{port}/health")[2])

def test_compose_dev_profile_reloads_on_a_source_edit(compose):
    run, env = compose
    if not _has_serve("tinygpt:latest"): pytest.skip("`tinygpt serve` is not in this package yet: dev profile not run")
    run("--profile", "dev", "up", "-d", "--no-build", "api-dev")
    name, port = run("--profile", "dev", "ps", "-q", "api-dev").stdout.split()[0], env["DEV_PORT"]
    _wait_http(f"http://127.0.0.1:{port}/health", name)
    touched = ROOT / "tinygpt" / "__init__.py"
    os.utime(touched)  # a new modification time (the content is untouched): the reloader restarts the server
    log, t0 = "", time.monotonic()
    while log.count("tinygpt: serving") < 2 and time.monotonic() - t0 < 120:
        time.sleep(1); log = _sh("docker", "logs", name).stdout
    assert "reload: source changed" in log and log.count("tinygpt: serving") == 2, log[-2000:]
    _wait_http(f"http://127.0.0.1:{port}/health", name)
