"tinygpt.hub: course-format round trips, published-layout loads, bad input, offline behaviour (all offline but one)."
import dataclasses, json, os, pickle, re, socket, subprocess, sys
from pathlib import Path
import pytest, torch, torch.nn.functional as F
from safetensors.torch import load_file
import huggingface_hub.constants as hub_constants
import tinygpt.hub as hub
from tinygpt.hub import (CheckpointError, OfflineError, HubGPT, save_pretrained, load_checkpoint, from_pretrained,
                         load_default, write_model_card, as_hub, course_key, to_published, PUBLISHED_FILES)
from tinygpt.model import GPT, GPTConfig
from tinygpt.moe import MoEConfig, PRESETS
from conftest import FullDisk

REFERENCE = Path(hub.__file__).parent / "assets" / "reference" / "state_dicts.json"      # shipped with the package
SHARED_SEED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "seed_state_dicts.json"
# Small models in the published layout: heads are in no tensor's shape, so loading them needs config=.
SMALL = {"tinygpt": GPTConfig(vocab_size=320, block_size=32, n_layer=2, n_head=8, n_embd=64, dropout=0.1),
         "tinygpt-moe": MoEConfig(vocab_size=320, block_size=32, n_layer=2, n_head=8, n_embd=64, dropout=0.1,
                                  n_experts=4, top_k_experts=2, expert_hidden=96)}

@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad(): yield

def seed(): return json.loads(REFERENCE.read_text())

def small_model(arch, seed_=0):
    torch.manual_seed(seed_)
    m = GPT(SMALL[arch]).eval()
    for p in m.parameters(): p.add_(torch.randn_like(p) * 0.05)   # LN weights/biases not all 1/0
    return m

def idx(cfg, T=12, B=2): return torch.randint(0, cfg.vocab_size, (B, T), generator=torch.Generator().manual_seed(1))

# --- the reference math, written independently of the loader ---------------------------------------------------
def ref_forward(sd, ids, n_head=8):
    "Logits of a published-layout state dict, computed like the reference (nn.MultiheadAttention, ReLU MLP, top-2 MoE)."
    sd = {re.sub(r"(experts\.\d+)\.swiglu\.", r"\1.", k.removeprefix("_orig_mod.").removeprefix("module.")): v for k, v in sd.items()}
    moe = "token_emb.weight" in sd
    tok, pos = (sd["token_emb.weight"], sd["pos_emb.weight"]) if moe else (sd["token_embedding_table.weight"], sd["position_embedding_table.weight"])
    B, T = ids.shape; C = tok.shape[1]
    x = F.embedding(ids, tok) + pos[:T]
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)                      # True = may not attend
    n_layer = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(n_layer):
        g = lambda n: sd[f"blocks.{i}.{n}"]
        h = F.layer_norm(x, (C,), g("ln1.weight"), g("ln1.bias")).transpose(0, 1)   # (T, B, C)
        a, _ = F.multi_head_attention_forward(h, h, h, C, n_head, g("attn.in_proj_weight"), g("attn.in_proj_bias"), None, None,
                                              False, 0.0, g("attn.out_proj.weight"), g("attn.out_proj.bias"),
                                              training=False, need_weights=False, attn_mask=mask)
        x = x + a.transpose(0, 1)
        h = F.layer_norm(x, (C,), g("ln2.weight"), g("ln2.bias"))
        if moe:
            top, sel = (h @ g("moe.gate.weight").T).topk(2, dim=-1)
            w, out = top.softmax(-1), torch.zeros_like(h)
            for j in range(g("moe.gate.weight").shape[0]):
                y = F.linear(F.silu(F.linear(h, g(f"moe.experts.{j}.gate_proj.weight"))) * F.linear(h, g(f"moe.experts.{j}.up_proj.weight")),
                             g(f"moe.experts.{j}.down_proj.weight"))
                out = out + (w * (sel == j)).sum(-1, keepdim=True) * y
        else: out = F.linear(F.relu(F.linear(h, g("ffwd.0.weight"), g("ffwd.0.bias"))), g("ffwd.2.weight"), g("ffwd.2.bias"))
        x = x + out
    return F.layer_norm(x, (C,), sd["ln_f.weight"], sd["ln_f.bias"]) @ sd["lm_head.weight"].T

@pytest.mark.parametrize("arch", ["tinygpt", "tinygpt-moe"])
def test_published_layout_helper_matches_reference_keys(arch):
    "hub.to_published (PUBLISHED_NAMES read backwards) gives the shipped reference key list and shapes exactly."
    ref = seed()[arch]
    with torch.device("meta"): m = GPT(PRESETS[arch])
    got = [(k, list(v.shape)) for k, v in to_published(m.state_dict(), arch).items()]
    assert sorted(got) == sorted((k, s) for k, s in ref["keys"])
    assert m.n_params() == ref["parameters"] and ref["file"] == PUBLISHED_FILES[arch]
    assert [course_key(k) for k, _ in got] == list(m.state_dict())             # and back again

def test_shipped_reference_matches_shared():
    "The package's reference facts were made from the shared reference folder (checked where it exists, e.g. CI)."
    if not SHARED_SEED.exists(): pytest.skip(f"no shared reference at {SHARED_SEED}")
    shared, ours = json.loads(SHARED_SEED.read_text()), seed()
    for arch in ("tinygpt", "tinygpt-moe"):
        sd = shared[arch]["state_dict"]
        assert [[k, list(s)] for k, s in (sd.items() if isinstance(sd, dict) else sd)] == ours[arch]["keys"]
        assert shared[arch]["params"] == ours[arch]["parameters"] and shared[arch]["published_file"] == ours[arch]["file"]

# --- course format ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["tinygpt", "tinygpt-moe"])
def test_course_folder_round_trip(tmp_path, arch):
    m = small_model(arch)
    folder = save_pretrained(m, tmp_path / "out", model_card=dict(data="test data", steps=7, held_out_loss=3.25))
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    stored = load_file(folder / "model.safetensors")
    assert ("tok_emb.weight" in stored) != ("lm_head.weight" in stored)     # the tie is stored once
    assert json.loads((folder / "config.json").read_text()) == m.config.to_dict()
    x = idx(m.config)
    for back in (load_checkpoint(folder), load_checkpoint(folder / "model.safetensors"), HubGPT.from_pretrained(folder)):
        assert isinstance(back, GPT) and not back.training
        assert back.lm_head.weight is back.tok_emb.weight
        assert back.config == m.config
        assert torch.equal(back(x), m(x))
    # a loaded HubGPT saves again (the mixin's own method) and still round-trips
    back.save_pretrained(tmp_path / "again")
    assert torch.equal(load_checkpoint(tmp_path / "again")(x), m(x))

def test_half_precision_folder_loads_as_float32(tmp_path):
    "A folder saved in bf16 (smaller files, e.g. `tinygpt export --dtype bf16`) loads into a float32 model, values kept."
    m = small_model("tinygpt-moe").to(torch.bfloat16)
    save_pretrained(m, tmp_path / "bf16")
    assert load_file(tmp_path / "bf16" / "model.safetensors")["blocks.0.mlp.router.weight"].dtype == torch.bfloat16
    back = load_checkpoint(tmp_path / "bf16")
    assert back.tok_emb.weight.dtype == torch.float32 and back.lm_head.weight is back.tok_emb.weight
    assert torch.equal(back.blocks[1].mlp.experts[2].up_proj.weight, m.blocks[1].mlp.experts[2].up_proj.weight.float())

def test_as_hub_shares_parameters():
    m = small_model("tinygpt")
    h = as_hub(m)
    assert isinstance(h, HubGPT) and h.tok_emb.weight.data_ptr() == m.tok_emb.weight.data_ptr()
    assert h.lm_head.weight is h.tok_emb.weight
    with pytest.raises(TypeError): as_hub(torch.nn.Linear(2, 2))

def test_save_is_atomic(tmp_path, monkeypatch):
    m = small_model("tinygpt")
    import safetensors.torch
    def boom(*a, **k): raise OSError("disk full")
    with monkeypatch.context() as mp:
        mp.setattr(safetensors.torch, "save_model", boom)
        with pytest.raises(OSError, match="disk full"): save_pretrained(m, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []                                   # no folder, no temp left behind
    folder = save_pretrained(m, tmp_path / "new")
    m2 = small_model("tinygpt", seed_=5)
    save_pretrained(m2, folder, model_card="# my card\n")                   # into an existing folder: swapped whole
    assert (folder / "README.md").read_text() == "# my card\n"
    assert torch.equal(load_checkpoint(folder)(idx(m.config)), m2(idx(m.config)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError): save_pretrained(m, tmp_path / "file")

def test_saved_folder_is_readable_by_all(tmp_path):
    "save_pretrained builds in a private mkdtemp folder; the result must get the usual modes (umask 022: 755 / 644)."
    m = small_model("tinygpt")
    old = os.umask(0o022)
    try:
        folder = save_pretrained(m, tmp_path / "new", model_card=dict(data="test data"))
        save_pretrained(m, folder)                                                   # into an existing folder too
        write_model_card(folder, data="test data")                                   # a card rewritten in place too
    finally: os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o755
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (folder / name).stat().st_mode & 0o777 == 0o644, name

def test_push_to_hub_uploads_the_course_folder(monkeypatch):
    "push_to_hub (the mixin's) creates the repo and uploads config.json + model.safetensors + README.md in one commit."
    import huggingface_hub.hub_mixin as mixin
    seen = {}
    class FakeApi:
        def __init__(self, token=None): pass
        def create_repo(self, repo_id, private=None, exist_ok=False):
            return type("R", (), {"repo_id": repo_id})()
        def upload_folder(self, repo_id, folder_path, **kw):
            seen["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            seen["sd"] = load_file(Path(folder_path) / "model.safetensors"); return f"https://hf.co/{repo_id}/commit/1"
    monkeypatch.setattr(mixin, "HfApi", FakeApi)
    m = small_model("tinygpt")
    assert as_hub(m).push_to_hub("me/tiny").endswith("/commit/1")
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert torch.equal(seen["sd"]["blocks.0.attn.qkv.weight"], m.blocks[0].attn.qkv.weight)

def test_model_card(tmp_path):
    m = small_model("tinygpt-moe")
    folder = save_pretrained(m, tmp_path / "m")
    card = write_model_card(folder, data="TinyStories (course split)", steps=1234, held_out_loss=1.5, license="mit", seed=0)
    text = card.read_text()
    for s in ["license: mit", "library_name: tinygpt", "TinyStories (course split)", "1,234", "1.5000", "tinygpt-moe", "| Seed | 0 |",
              f"{m.n_params():,}"]: assert s in text, s
    from huggingface_hub import ModelCard
    assert ModelCard.load(card).data.license == "mit"

# --- published layouts ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,prefix,swiglu", [("tinygpt", "", False), ("tinygpt", "module.", False), ("tinygpt", "_orig_mod.", False),
                                                ("tinygpt-moe", "", False), ("tinygpt-moe", "_orig_mod.", False),
                                                ("tinygpt-moe", "_orig_mod.", True), ("tinygpt-moe", "", True)])
def test_small_published_layouts_load(tmp_path, arch, prefix, swiglu):
    m = small_model(arch)
    sd = to_published(m.state_dict(), arch, prefix, swiglu)
    torch.save(sd, tmp_path / "w.pt")
    x = idx(m.config)
    with pytest.raises(CheckpointError, match="number of attention heads is stored nowhere"): load_checkpoint(tmp_path / "w.pt")
    for a in (None, arch):
        got = load_checkpoint(tmp_path / "w.pt", arch=a, config=m.config)
        assert got.config == m.config and not got.training
        assert torch.equal(got(x), m(x))
        torch.testing.assert_close(got(x), ref_forward(sd, x), atol=1e-4, rtol=1e-4)

@pytest.mark.parametrize("arch", ["tinygpt", "tinygpt-moe"])
def test_full_size_published_checkpoint(tmp_path, arch):
    "State dicts straight from the reference key list, full size, random values: same logits as the reference math."
    ref = seed()[arch]
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(s, generator=g) * 0.02 for k, s in ref["keys"]}
    emb = "token_embedding_table.weight" if arch == "tinygpt" else "token_emb.weight"
    sd["lm_head.weight"] = sd[emb]                                           # tied, as torch.save stores it
    if arch == "tinygpt-moe":                                                # compiled + liger layout
        sd = {"_orig_mod." + re.sub(r"(experts\.\d+)\.", r"\1.swiglu.", k): v for k, v in sd.items()}
    torch.save(sd, tmp_path / ref["file"])
    got = load_checkpoint(tmp_path / ref["file"])                          # the published sizes: 8 heads, no config needed
    assert got.config == PRESETS[arch] and got.n_params() == ref["parameters"]
    x = torch.randint(0, 50257, (1, 8), generator=g)
    torch.testing.assert_close(got(x), ref_forward(sd, x), atol=1e-4, rtol=1e-3)

def test_course_key_rules():
    assert course_key("_orig_mod.module.blocks.1.moe.experts.2.swiglu.down_proj.weight") == "blocks.1.mlp.experts.2.down_proj.weight"
    assert course_key("blocks.1.swiglu.x") == "blocks.1.swiglu.x"
    assert course_key("blocks.0.attn.in_proj_weight") == "blocks.0.attn.qkv.weight"
    assert course_key("lm_head.weight") == "lm_head.weight"

# --- training checkpoints -------------------------------------------------------------------------------------------
def test_training_checkpoint(tmp_path):
    m = small_model("tinygpt-moe")
    run = tmp_path / "run"; run.mkdir()
    model_sd = {"_orig_mod." + k: v for k, v in m.state_dict().items()}        # saved from a compiled model
    torch.save({"model": model_sd, "config": m.config.to_dict(), "optimizer": {"state": {}, "param_groups": []}, "step": 5}, run / "checkpoint.pt")
    (run / "metrics.jsonl").write_text("{}\n")
    x = idx(m.config)
    for p in (run, run / "checkpoint.pt"):
        got = load_checkpoint(p)
        assert got.config == m.config and torch.equal(got(x), m(x))
    with pytest.raises(CheckpointError, match="holds a tinygpt-moe model, not tinygpt"): load_checkpoint(run, arch="tinygpt")

class Obj: "Some Python object that is not a tensor."

# --- bad input ------------------------------------------------------------------------------------------------------
def err(fn, match, exc=CheckpointError):
    with pytest.raises(exc, match=match) as e: fn()
    assert e.value.__cause__ is None and e.value.__suppress_context__ or e.value.__context__ is None, "deep traceback chained"
    return str(e.value)

def test_bad_files(tmp_path):
    m = small_model("tinygpt")
    good = tmp_path / "good.pt"; torch.save(to_published(m.state_dict(), "tinygpt"), good)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "text.pt").write_text("once upon a time\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"model": Obj()}, tmp_path / "objects.pt")
    with open(tmp_path / "plain.pkl", "wb") as f: pickle.dump({"model": Obj()}, f)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"optimizer": {"lr": 1.0}}, tmp_path / "nomodel.pt")
    err(lambda: load_checkpoint(tmp_path / "cut.pt"), "truncated or corrupt")
    err(lambda: load_checkpoint(tmp_path / "text.pt"), "truncated or corrupt")
    err(lambda: load_checkpoint(tmp_path / "empty.pt"), "truncated or corrupt")
    assert "test_hub.Obj" in err(lambda: load_checkpoint(tmp_path / "objects.pt"), "objects other than tensors.*refused for safety")
    err(lambda: load_checkpoint(tmp_path / "plain.pkl"), "objects other than tensors.*refused for safety")
    class Evil:
        def __reduce__(self): return (os.system, ("echo owned",))
    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    msg = err(lambda: load_checkpoint(tmp_path / "evil.pt"), "objects other than tensors.*refused for safety")
    assert "system" in msg and "truncated" not in msg
    err(lambda: load_checkpoint(tmp_path / "list.pt"), "not a model checkpoint.*got a list")
    err(lambda: load_checkpoint(tmp_path / "nomodel.pt"), "not a model checkpoint")
    err(lambda: load_checkpoint(tmp_path / "missing.pt"), "no checkpoint at", FileNotFoundError)
    (tmp_path / "emptydir").mkdir()
    err(lambda: load_checkpoint(tmp_path / "emptydir"), "neither model.safetensors", FileNotFoundError)

def test_bad_course_folder(tmp_path):
    m = small_model("tinygpt")
    folder = save_pretrained(m, tmp_path / "f")
    w = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(w[: len(w) // 2])
    err(lambda: load_checkpoint(folder), "not a readable safetensors file")
    (folder / "model.safetensors").write_bytes(w)
    (folder / "config.json").write_text("{not json")
    err(lambda: load_checkpoint(folder), "not a readable JSON config")
    cfg = m.config.to_dict(); cfg["n_embd"] = 128
    (folder / "config.json").write_text(json.dumps(cfg))
    err(lambda: load_checkpoint(folder), "wrong shape")
    (folder / "config.json").write_text(json.dumps({**m.config.to_dict(), "n_experts": 4}))
    err(lambda: load_checkpoint(folder), "config describes a tinygpt-moe model but its weights are tinygpt")
    (folder / "config.json").unlink()
    err(lambda: load_checkpoint(folder), "config.json is missing", FileNotFoundError)

def test_strictness_names_the_keys(tmp_path):
    m = small_model("tinygpt-moe")
    sd = to_published(m.state_dict(), "tinygpt-moe", "_orig_mod.", swiglu=True)
    def check(d, match):
        torch.save(d, tmp_path / "x.pt"); return err(lambda: load_checkpoint(tmp_path / "x.pt", config=m.config), match)
    check({k: v for k, v in sd.items() if "experts.3." not in k}, r"missing: blocks\.0\.mlp\.experts\.3\.down_proj\.weight")
    check({**sd, "_orig_mod.blocks.0.moe.extra.weight": torch.zeros(2)}, r"unexpected: blocks\.0\.mlp\.extra\.weight")
    bad = dict(sd); bad["_orig_mod.blocks.1.moe.experts.0.swiglu.up_proj.weight"] = torch.zeros(5, 64)
    check(bad, r"wrong shape.*blocks\.1\.mlp\.experts\.0\.up_proj\.weight \(5, 64\) != \(96, 64\)")
    # the reference bug: '.swiglu.' removed where it should not be -> our loader still refuses, never loads partially
    check({k.replace("moe.experts", "moe.experts_liger"): v for k, v in sd.items()}, "missing:.*unexpected:")
    untied = dict(sd); untied["_orig_mod.lm_head.weight"] = sd["_orig_mod.lm_head.weight"] + 1
    check(untied, "tok_emb.weight and lm_head.weight differ")
    check({**sd, "blocks.0.ln1.weight": torch.ones(64)}, "both mean 'blocks.0.ln1.weight'")
    check({"foo.weight": torch.ones(2)}, "neither a tinygpt nor a tinygpt-moe")

def test_arch_argument(tmp_path):
    m = small_model("tinygpt")
    torch.save(to_published(m.state_dict(), "tinygpt"), tmp_path / "d.pt")
    msg = err(lambda: load_checkpoint(tmp_path / "d.pt", arch="tinygpt-moe"), "holds a tinygpt model, not tinygpt-moe")
    assert "arch='tinygpt'" in msg
    err(lambda: load_checkpoint(tmp_path / "d.pt", arch="llama"), "arch must be one of")
    assert isinstance(CheckpointError("x"), ValueError)

# --- from_pretrained / load_default --------------------------------------------------------------------------------
def test_from_pretrained_offline_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    for variant in ("tinygpt", "tinygpt-moe"):
        msg = err(lambda: from_pretrained(variant=variant, cache_dir=tmp_path), "unreachable", OfflineError)
        assert PUBLISHED_FILES[variant] in msg and "load_checkpoint(path)" in msg
    err(lambda: from_pretrained("someone/course-model", variant=None, cache_dir=tmp_path), "unreachable", OfflineError)

def test_from_pretrained_offline_env(tmp_path):
    "The documented way: HF_HUB_OFFLINE=1 in the environment (read when huggingface_hub is imported)."
    code = ("import tinygpt.hub as h\ntry: h.from_pretrained(cache_dir=%r)\nexcept h.OfflineError as e: print('OFFLINE', e)" % str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("OFFLINE") and "hf download NotShrirang/tinygpt" in r.stdout, r.stdout + r.stderr

def test_from_pretrained_downloads_and_converts(tmp_path, monkeypatch):
    "hf_hub_download gets repo, published filename, revision and cache_dir; the file is converted strictly."
    files = {}
    for arch in ("tinygpt", "tinygpt-moe"):
        files[arch] = small_model(arch)
        torch.save(to_published(files[arch].state_dict(), arch, "_orig_mod." if arch == "tinygpt-moe" else ""), tmp_path / PUBLISHED_FILES[arch])
    calls = []
    def fake(repo_id, filename, revision=None, cache_dir=None, **kw):
        calls.append((repo_id, filename, revision, cache_dir)); return str(tmp_path / filename)
    monkeypatch.setattr(hub, "hf_hub_download", fake)
    for arch, m in files.items():
        got = from_pretrained(variant=arch, revision="abc123", cache_dir="/c", config=m.config)
        x = idx(m.config)
        assert torch.equal(got(x), m(x)) and not got.training
    assert calls == [("NotShrirang/tinygpt", PUBLISHED_FILES["tinygpt"], "abc123", "/c"),
                     ("NotShrirang/tinygpt", PUBLISHED_FILES["tinygpt-moe"], "abc123", "/c")]
    # a file that holds the other architecture is caught
    monkeypatch.setattr(hub, "hf_hub_download", lambda repo_id, filename, **kw: str(tmp_path / PUBLISHED_FILES["tinygpt-moe"]))
    err(lambda: from_pretrained(variant="tinygpt"), "holds a tinygpt-moe model, not tinygpt")
    err(lambda: from_pretrained(variant="gpt2"), "variant must be one of")

def test_from_pretrained_hub_errors(monkeypatch):
    "Hub answers (no repo, no revision, no file, server error) become one clear sentence each."
    import httpx
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError, HfHubHTTPError
    resp = httpx.Response(404, request=httpx.Request("GET", "https://huggingface.co/x"))
    for exc, kind, match in [(RepositoryNotFoundError, CheckpointError, "no model repo 'me/nothing'"),
                             (RevisionNotFoundError, CheckpointError, "has no such revision"),
                             (RemoteEntryNotFoundError, CheckpointError, "has no file 'final_model_tiny"),
                             (HfHubHTTPError, OfflineError, "did not serve")]:
        def fake(*a, **k): raise exc("boom", response=resp)
        monkeypatch.setattr(hub, "hf_hub_download", fake)
        err(lambda: from_pretrained("me/nothing", revision="v9"), match, kind)

def test_load_default(tmp_path, monkeypatch):
    if (hub.DEFAULT_DIR / "model.safetensors").exists():
        m = load_default()
        assert isinstance(m, GPT) and not m.training and m.lm_head.weight is m.tok_emb.weight
        assert (hub.DEFAULT_DIR / "README.md").exists(), "the bundled model needs its model card"
        out = m(torch.tensor([[0, 1, 2]]))
        assert out.shape == (1, 3, m.config.vocab_size) and torch.isfinite(out).all()
    monkeypatch.setattr(hub, "DEFAULT_DIR", tmp_path / "nothing")
    err(load_default, "bundled default model is missing", FileNotFoundError)
    m = small_model("tinygpt")
    save_pretrained(m, tmp_path / "nothing")
    assert torch.equal(load_default()(idx(m.config)), m(idx(m.config)))

def _online(host="huggingface.co"):
    try: socket.create_connection((host, 443), timeout=3).close(); return True
    except OSError: return False

@pytest.mark.network
@pytest.mark.parametrize("variant", ["tinygpt", "tinygpt-moe"])
def test_real_download(variant, tmp_path):
    if hub_constants.HF_HUB_OFFLINE or not _online(): pytest.skip("no connection to huggingface.co (or HF_HUB_OFFLINE=1)")
    m = from_pretrained(variant=variant)                                      # default cache: downloads once
    assert m.config == PRESETS[variant] and not m.training
    assert m.n_params() == {"tinygpt": 51237888, "tinygpt-moe": 84788224}[variant]
    logits = m(torch.tensor([[7454, 2402, 257, 640]]))                       # "Once upon a time"
    assert torch.isfinite(logits).all()
    save_pretrained(m, tmp_path / "conv")
    assert torch.equal(load_checkpoint(tmp_path / "conv")(torch.tensor([[1, 2]])), m(torch.tensor([[1, 2]])))

# --- reliability: ambiguous heads, NaN weights, full disks, run folders, whole-folder swaps -------------------------
def test_bare_state_dict_needs_its_architecture(tmp_path):
    "A 4-head model saved as a bare state dict must not load as 8 heads (different logits); config= makes it exact."
    torch.manual_seed(0)
    m = GPT(PRESETS["tiny"]).eval()                                          # 4 heads, like the bundled model
    torch.save(m.state_dict(), tmp_path / "bare.pt")
    msg = err(lambda: load_checkpoint(tmp_path / "bare.pt"), "cannot be read from the shapes")
    assert "config=" in msg and "n_embd=128" in msg
    x = torch.randint(0, 50257, (1, 16))
    for cfg in (PRESETS["tiny"], "tiny", PRESETS["tiny"].to_dict()):
        assert torch.equal(load_checkpoint(tmp_path / "bare.pt", config=cfg)(x), m(x))
    eight = dataclasses.replace(PRESETS["tiny"], n_head=8)                 # the wrong head count loads, but differs:
    assert not torch.equal(load_checkpoint(tmp_path / "bare.pt", config=eight)(x), m(x))   # hence no guessing
    err(lambda: load_checkpoint(tmp_path / "bare.pt", config="huge"), "unknown preset")
    folder = save_pretrained(m, tmp_path / "f")                            # a folder has its config: config= must agree
    err(lambda: load_checkpoint(folder, config=eight), "differs from config=")

def test_nan_weights_refused(tmp_path):
    m = small_model("tinygpt")
    sd = {k: v.clone() for k, v in m.state_dict().items()}; sd["blocks.1.attn.proj.weight"][3, 4] = float("inf")
    torch.save({"model": sd, "config": m.config.to_dict(), "step": 1}, tmp_path / "inf.pt")
    msg = err(lambda: load_checkpoint(tmp_path / "inf.pt"), "NaN or inf")
    assert "blocks.1.attn.proj.weight" in msg
    with torch.no_grad(): m.blocks[0].mlp.fc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"): save_pretrained(m, tmp_path / "out")
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["inf.pt"]


def test_model_card_on_a_full_disk_leaves_no_temp_file(tmp_path, monkeypatch):
    import tinygpt.data
    folder = save_pretrained(small_model("tinygpt"), tmp_path / "m")
    before = (folder / "README.md").read_text()
    real = os.fdopen
    monkeypatch.setattr(tinygpt.data.os, "fdopen", lambda *a, **k: FullDisk(real(*a, **k), limit=100))
    with pytest.raises(OSError, match="No space left"): write_model_card(folder, data="x" * 1000, steps=3)
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (folder / "README.md").read_text() == before

def test_run_folder_loads_its_checkpoint_and_refuses_exports(tmp_path):
    "Rule: a folder with checkpoint.pt is a training run and loads from it, so a model.safetensors there can't be stale."
    old, new = small_model("tinygpt", 1), small_model("tinygpt", 2)
    run = tmp_path / "run"; run.mkdir()
    torch.save({"model": new.state_dict(), "config": new.config.to_dict(), "step": 9}, run / "checkpoint.pt")
    with pytest.raises(ValueError, match="training run folder"): save_pretrained(old, run)       # export RUN RUN: refused
    save_pretrained(old, tmp_path / "elsewhere")
    for name in ("model.safetensors", "config.json"):                                           # copied in by hand
        (run / name).write_bytes((tmp_path / "elsewhere" / name).read_bytes())
    os.utime(run / "model.safetensors", (4e9, 4e9))                                            # even "newer" on the clock
    x = idx(new.config)
    assert torch.equal(load_checkpoint(run)(x), new(x))
    assert torch.equal(load_checkpoint(run / "model.safetensors")(x), old(x))                   # unless asked by name

def test_save_pretrained_swaps_the_whole_folder(tmp_path, monkeypatch):
    a, b = small_model("tinygpt", 1), small_model("tinygpt", 2)
    folder = save_pretrained(a, tmp_path / "m", model_card="# card A\n")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")                       # part of a model repo
    x = idx(a.config)
    def crash(new, target): raise OSError("killed before the swap")                            # a crash before the swap:
    monkeypatch.setattr(hub, "swap_folder", crash)
    with pytest.raises(OSError, match="killed"): save_pretrained(b, folder)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(folder)(x), a(x)) and (folder / "README.md").read_text() == "# card A\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]                                 # the old folder, no temp
    for exchange in (True, False):                                                             # renameat2, or two renames
        if not exchange: monkeypatch.setattr(hub, "_exchange", lambda p, q: False)
        save_pretrained(b if exchange else a, folder, model_card="# card B\n")
        assert torch.equal(load_checkpoint(folder)(x), (b if exchange else a)(x))
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]  # all new
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"not part of a saved model \(notes.txt\)"): save_pretrained(b, folder)
    assert (folder / "notes.txt").read_text() == "mine"
