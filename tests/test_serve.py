"""The HTTP service of lesson 12 (`tinygpt.serve`), tested over real HTTP.

Most tests talk to `tinygpt.serve.run_server` started in a subprocess (uvicorn on 127.0.0.1, a free port), serving
the bundled model. Texts are compared with `tinygpt.generate.complete` run here with the same seed: the server
decodes concurrent requests in one batch, whose matrix products can differ from one-row products in the last float
bits, so a token could only differ at a near-tie of two candidates; on the bundled model and these seeds the texts
are equal, and the tests say so."""
import json, os, subprocess, sys, threading, time
from pathlib import Path
import pytest, torch

fastapi = pytest.importorskip("fastapi", reason='the serve extra is not installed (pip install "tinygpt[serve]")')
httpx = pytest.importorskip("httpx", reason='httpx is not installed (pip install "tinygpt[serve]")')
import tinygpt
from tinygpt.generate import complete
from tinygpt.hub import load_default
from tinygpt.tokenizer import get_tokenizer, EOT_ID
from tinygpt.serve import TextStream, create_app, BackgroundServer, run_server

ROOT = Path(__file__).resolve().parents[1]
MAX_NEW, MAX_PROMPT = 4000, 200

def _free_port():
    import socket
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@pytest.fixture(scope="module")
def url(tmp_path_factory):
    "run_server in a subprocess on a free port of 127.0.0.1; yields its base URL."
    port, log = _free_port(), tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}   # as the reference below
    code = f"from tinygpt.serve import run_server; run_server(port={port}, max_new_tokens={MAX_NEW}, max_prompt_tokens={MAX_PROMPT})"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.time() + 120
        while True:
            if proc.poll() is not None: pytest.fail(f"the server exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2, trust_env=False).status_code == 200: break
            except httpx.HTTPError: pass
            if time.time() > end: pytest.fail(f"the server did not answer in 120 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try: proc.wait(15)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait(5)

@pytest.fixture(scope="module")
def ref():
    "complete() with the bundled model and a seeded generator: what the server must answer (one thread, like the server)."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                             # a shared CI machine: no oversubscription; and the server's setting
    model, tok = load_default(), get_tokenizer()
    def f(prompt, max_new_tokens, seed, **kw):
        kw = {k: v for k, v in kw.items() if k in ("temperature", "top_k", "top_p", "repetition_penalty", "stop_at_eot")}
        return complete(model, tok, prompt, max_new_tokens, include_prompt=False, generator=torch.Generator().manual_seed(seed), **kw)
    yield f
    torch.set_num_threads(threads)

def post(url, path, body, **kw): return httpx.post(url + path, json=body, timeout=120, trust_env=False, **kw)
def health(url): return httpx.get(url + "/health", timeout=10, trust_env=False).json()

def events(url, body):
    "(arrival time, event name, data) of each server-sent event of /generate/stream."
    out, name = [], "message"
    with httpx.stream("POST", url + "/generate/stream", json=body, timeout=120, trust_env=False) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "): name = line[7:]
            elif line.startswith("data: "): out.append((time.perf_counter(), name, json.loads(line[6:]))); name = "message"
    return out

def test_health(url):
    h = health(url)
    assert h["status"] == "ok" and h["version"] == tinygpt.__version__ and "default" in h["models"]
    assert h["device"] and h["limits"] == {"max_prompt_tokens": MAX_PROMPT, "max_new_tokens": MAX_NEW, "max_batch": 32}
    assert {"active", "submitted", "finished", "cancelled", "failed", "tokens", "steps"} <= set(h["requests"])

def test_generate_matches_complete(url, ref):
    cases = [dict(temperature=0.0), dict(temperature=0.8, top_k=50), dict(temperature=1.0, top_p=0.9, repetition_penalty=1.3)]
    for seed, kw in enumerate(cases):
        body = {"prompt": "Once upon a time", "max_new_tokens": 24, "seed": seed, **kw}
        r = post(url, "/generate", body)
        assert r.status_code == 200, r.text
        a = r.json()
        assert a["text"] == ref(body["prompt"], 24, seed, **kw), kw
        assert a["seed"] == seed and a["n_prompt_tokens"] == 4 and a["finish_reason"] in ("stop", "length")
        assert 0 < a["n_tokens"] <= 24 and a["timings"]["total_s"] > 0
    first = post(url, "/generate", {"prompt": "The dog", "max_new_tokens": 20}).json()    # no seed: a random one, returned
    again = post(url, "/generate", {"prompt": "The dog", "max_new_tokens": 20, "seed": first["seed"]}).json()
    assert again["text"] == first["text"]

def test_models(url):
    models = {m["name"]: m for m in httpx.get(url + "/models", timeout=10, trust_env=False).json()["models"]}
    post(url, "/generate", {"prompt": "Hi", "max_new_tokens": 2})                      # make sure 'default' is loaded
    models = {m["name"]: m for m in httpx.get(url + "/models", timeout=10, trust_env=False).json()["models"]}
    d = models["default"]
    assert d["loaded"] and d["arch"] == "dense" and d["config"] == load_default().config.to_dict()
    assert d["n_params"] == sum(p.numel() for p in load_default().parameters())

def test_stream_arrives_in_pieces_and_joins_to_the_same_text(url):
    body = {"prompt": "Lily and Ben", "max_new_tokens": 48, "temperature": 0.9, "top_k": 40, "seed": 3}
    evs = events(url, body)
    pieces = [d["text"] for _, n, d in evs if n == "message"]
    assert evs[-1][1] == "done" and len(pieces) >= 10
    assert "".join(pieces) == post(url, "/generate", body).json()["text"]
    done = evs[-1][2]
    assert done["finish_reason"] in ("stop", "length") and done["seed"] == 3 and done["n_tokens"] <= 48
    assert {"queued_s", "first_token_s", "total_s", "tokens_per_s"} <= set(done["timings"])
    times = [t for t, n, _ in evs if n == "message"]
    assert times[-1] - times[0] > 0.25 * (evs[-1][0] - times[0]), "the pieces came in one burst, not one by one"

def test_text_stream_never_splits_a_character():
    tok = get_tokenizer()
    text = "A teddy bear 🧸, a dragon 🐉 and 日本"
    ids = tok.encode(text) + [EOT_ID]
    ts = TextStream(tok)
    pieces = [ts.push(t) for t in ids] + [ts.close()]
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)
    assert "" in pieces                                                            # some tokens end inside a character
    ts = TextStream(tok)                                                           # an EOT in the middle stays, a final one goes
    assert "".join([ts.push(t) for t in tok.encode("a") + [EOT_ID] + tok.encode("b") + [EOT_ID]] + [ts.close()]) == "a<|endoftext|>b"

@pytest.mark.parametrize("body, field", [
    ({"prompt": ""}, "prompt"), ({"prompt": "Hi", "temperature": -0.5}, "temperature"),
    ({"prompt": "Hi", "top_p": 0}, "top_p"), ({"prompt": "Hi", "top_p": 1.01}, "top_p"),
    ({"prompt": "Hi", "model": "nope"}, "model"), ({"prompt": "Hi", "max_new_tokens": MAX_NEW + 1}, "max_new_tokens"),
    ({"prompt": "Hi", "max_new_tokens": 0}, "max_new_tokens"), ({"prompt": "word " * (MAX_PROMPT + 5)}, "prompt"),
    ({"prompt": "Hi", "top_k": 0}, "top_k"), ({"prompt": "Hi", "seed": -1}, "seed"), ({"max_new_tokens": 3}, "prompt"),
    ({"prompt": "Hi", "temprature": 1.0}, "temprature"), ({"prompt": "Hi", "repetition_penalty": 0}, "repetition_penalty")])
def test_bad_input_is_422_naming_the_field(url, body, field):
    for path in ("/generate", "/generate/stream"):
        r = post(url, path, body)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert r.json()["message"].startswith(field + ":"), r.json()["message"]

def test_broken_json_is_422(url):
    r = httpx.post(url + "/generate", content=b'{"prompt": ', headers={"Content-Type": "application/json"}, timeout=10, trust_env=False)
    assert r.status_code == 422

def test_disconnected_client_stops_its_generation(url):
    before = health(url)["requests"]
    body = {"prompt": "Once upon a time", "max_new_tokens": MAX_NEW, "stop_at_eot": False, "seed": 1}
    with httpx.stream("POST", url + "/generate/stream", json=body, timeout=60, trust_env=False) as r:
        n = 0
        for line in r.iter_lines():
            n += line.startswith("data: ")
            if n == 3: break                                                      # leave after three pieces
    end = time.time() + 20
    while (h := health(url)["requests"])["cancelled"] == before["cancelled"] and time.time() < end: time.sleep(0.1)
    assert h["cancelled"] == before["cancelled"] + 1 and h["active"] == 0, h
    time.sleep(1.0)
    later = health(url)["requests"]
    assert later["tokens"] == h["tokens"], "tokens are still being generated after the client left"
    assert later["tokens"] - before["tokens"] < MAX_NEW

def test_sixteen_concurrent_requests_are_all_correct(url, ref):
    prompts = ["Once upon a time", "The dog", "Lily and Ben went to the park to play with their new red ball", "Tom"]
    bodies = [{"prompt": prompts[i % 4], "max_new_tokens": 8 + 2 * i, "temperature": [0.0, 0.7, 1.0, 0.9][i % 4],
               "top_k": [None, 40, None, 20][i % 4], "top_p": [None, None, 0.9, None][i % 4],
               "repetition_penalty": [1.0, 1.0, 1.2, 1.0][i % 4], "seed": 50 + i} for i in range(16)]
    answers, before = [None] * 16, health(url)["requests"]
    def one(i): answers[i] = post(url, "/generate", bodies[i])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads: t.start()
    for t in threads: t.join()
    after = health(url)["requests"]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    for b, a in zip(bodies, answers):
        assert a.json()["text"] == ref(**b), b
    tokens, steps = after["tokens"] - before["tokens"], after["steps"] - before["steps"]
    assert steps < tokens / 2, f"{steps} decoder steps for {tokens} tokens: the requests were not batched"

def test_docs_and_page(url):
    get = lambda p: httpx.get(url + p, timeout=10, trust_env=False)
    assert get("/docs").status_code == 200
    schema = get("/openapi.json").json()
    assert {"/generate", "/generate/stream", "/health", "/models"} <= set(schema["paths"])
    props = schema["components"]["schemas"]["GenerateRequest"]["properties"]
    assert all(props[k].get("description") for k in ("prompt", "temperature", "top_p", "seed"))
    page = get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="prompt"' in page.text and "generate/stream" in page.text
    assert "http://" not in page.text and "https://" not in page.text and "<script src" not in page.text   # nothing from elsewhere

def test_generation_error_is_logged_and_answered_cleanly(caplog):
    model = load_default()
    model.ln_f.register_forward_hook(lambda *a: 1 / 0)                              # every forward fails
    with BackgroundServer(create_app({"broken": model})) as server:
        body = {"prompt": "Hi", "model": "broken", "max_new_tokens": 5}
        r = post(server.url, "/generate", body)
        assert r.status_code == 500 and "generation failed: ZeroDivisionError" in r.json()["detail"]
        evs = events(server.url, body)
        assert [n for _, n, _ in evs] == ["error"] and "ZeroDivisionError" in evs[0][2]["detail"]
        h = health(server.url)
        assert h["status"] == "ok" and h["requests"]["failed"] == 2 and h["requests"]["active"] == 0
    assert any("generation failed" in rec.getMessage() for rec in caplog.records)

def test_bad_server_settings():
    with pytest.raises(ValueError, match="max_new_tokens"): run_server(max_new_tokens=0)
    with pytest.raises(ValueError, match="port"): run_server(port=70000)
    with pytest.raises(FileNotFoundError): create_app(checkpoints=["/nonexistent/run"])

def test_core_package_imports_without_fastapi():
    code = ("import sys, importlib.abc\n"
            "class NoServe(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('fastapi', 'uvicorn'): raise ImportError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, NoServe())\n"
            "import tinygpt, tinygpt.generate, tinygpt.hub, tinygpt.widgets\n"
            "try: import tinygpt.serve\n"
            "except ImportError as e: print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'pip install "tinygpt[serve]"' in out.stdout, out.stdout

def test_slot_cache_batched_step_matches_one_forward_per_request():
    "Rows of different lengths in scattered slots (and after the slots grew) give the logits of separate forwards."
    from tinygpt.generate import next_logits
    from tinygpt.serve import SlotKV, prefill, ragged_next_logits
    torch.manual_seed(0)
    model, tok = load_default(), get_tokenizer()
    prompts = ["Once upon a time", "The dog", "Lily and Ben went to the park", "A", "Tom had a red ball and a blue"]
    kv, caches = SlotKV(model, max_slots=8, n_slots=2), []
    slots = [kv.take() for _ in prompts]                              # 5 slots from 2: the tensors grew twice
    assert len(kv.lengths) == 8 and slots == [0, 1, 2, 3, 4]
    kv.release(1); kv.release(3); slots[1], slots[3] = kv.take(), kv.take()
    slots = [slots[i] for i in (4, 1, 0, 3, 2)]; prompts = [prompts[i] for i in (4, 1, 0, 3, 2)]   # not in slot order
    with torch.inference_mode():
        for p, s in zip(prompts, slots):
            ids = torch.tensor([tok.encode(p)[:-1] or [EOT_ID]])
            c = model.new_cache(); next_logits(model, ids, c); caches.append(c); prefill(model, kv, [s], ids)
        last = [tok.encode(p)[-1] for p in prompts]
        for _ in range(3):                                               # three steps: lengths keep differing
            fast = ragged_next_logits(model, last, kv, slots)
            slow = torch.cat([next_logits(model, torch.tensor([[t]]), c) for t, c in zip(last, caches)])
            torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)
            last = fast.argmax(-1).tolist()
    assert [kv.lengths[s] for s in slots] == [c.length for c in caches]
    with pytest.raises(RuntimeError, match="all 8 slots"):
        for _ in range(9): kv.take()
