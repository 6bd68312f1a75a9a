"Lesson 10 panels driven from code: set the widgets' values, call the actions, check what the panel shows."
import json, math, threading, time
from pathlib import Path
import pytest, torch, torch.nn.functional as F
from tinygpt.model import GPT, GPTConfig
from tinygpt.moe import MoEConfig
from tinygpt.tokenizer import get_tokenizer
import tinygpt.widgets as wg
from tinygpt.widgets import (SamplingPanel, LookInsidePanel, TrainingDashboard, top_candidates, expert_histogram,
                             attention_maps, look_inside, probe, DEFAULT_CHOICE, FOLDER_CHOICE)

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="module")
def tok(): return get_tokenizer()

def _tiny(tok, **kw):
    torch.manual_seed(0)
    Config = MoEConfig if kw else GPTConfig
    return GPT(Config(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=32, dropout=0.0, **kw)).eval()

@pytest.fixture(scope="module")
def dense(tok): return _tiny(tok)

@pytest.fixture(scope="module")
def moe(tok): return _tiny(tok, n_experts=4, top_k_experts=2, expert_hidden=64)

def _slow_stream(delay=0.02, token=" la"):
    "A stand-in for tinygpt.generate.stream that never ends by itself and records its arguments."
    calls = []
    def stream(model, idx, max_new_tokens, **kw):
        calls.append(dict(idx=idx, max_new_tokens=max_new_tokens, **kw))
        tid = get_tokenizer().encode(token)[0]
        for _ in range(max_new_tokens): time.sleep(delay); yield tid
    return stream, calls

# --- functions -----------------------------------------------------------------------------------------------
def test_top_candidates_sorted_probs_and_no_padded_rows(tok):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(tok.vocab_size, generator=g)
    logits[tok.n_vocab + 3] = 50.0                                    # a padded row: never a candidate
    cands = top_candidates(logits, tok, k=4)
    probs = F.softmax(logits, -1)
    want = probs[:tok.n_vocab].topk(4)
    assert [c[0] for c in cands] == [tok.decode([i]) for i in want.indices.tolist()]
    assert [c[1] for c in cands] == pytest.approx(want.values.tolist(), rel=1e-5)
    assert all(a[1] >= b[1] for a, b in zip(cands, cands[1:]))
    with pytest.raises(ValueError, match="one vector"): top_candidates(torch.zeros(2, 5), tok)
    with pytest.raises(ValueError, match="k must be"): top_candidates(logits, tok, k=0)

def test_expert_histogram():
    assert expert_histogram(torch.tensor([[0, 1], [0, 3]]), 4) == [0.5, 0.25, 0.0, 0.25]
    assert sum(expert_histogram(torch.randint(0, 8, (50, 2)), 8)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"): expert_histogram(torch.tensor([], dtype=torch.long), 4)
    with pytest.raises(ValueError): expert_histogram(torch.tensor([0, 4]), 4)

def test_attention_maps_are_what_the_model_computed(dense, tok):
    "maps @ v, heads merged, through attn.proj == the attention module's own output in the same forward."
    idx = torch.tensor([tok.encode("Tom and Lily went to the park to play.")])
    T = idx.size(1)
    maps = attention_maps(dense, idx)
    assert maps.shape == (2, 4, T, T)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 4, T), atol=1e-5)
    assert maps.triu(1).abs().max() == 0
    outs = []
    hooks = [b.attn.register_forward_hook(lambda m, i, o: outs.append(o)) for b in dense.blocks]
    _, qkvs, _ = probe(dense, idx)
    for h in hooks: h.remove()
    assert not dense.blocks[0].attn.qkv._forward_hooks, "probe left a hook behind"
    for l in range(2):
        C = qkvs[l].size(-1) // 3
        v = qkvs[l][..., 2 * C:].view(1, T, 4, C // 4).transpose(1, 2)
        y = (maps[l][None] @ v).transpose(1, 2).reshape(1, T, C)
        torch.testing.assert_close(dense.blocks[l].attn.proj(y), outs[l], atol=1e-5, rtol=1e-4)

def test_routing_matches_the_moe_layers_counts(moe, tok):
    idx = torch.tensor([tok.encode("Once upon a time there was a frog.")])
    _, _, routing = probe(moe, idx)
    assert routing.shape == (2, idx.size(1), 2)
    for l, b in enumerate(moe.blocks):
        assert torch.bincount(routing[l].flatten(), minlength=4).tolist() == b.mlp.expert_counts.tolist()
    assert probe(_tiny(tok), idx)[2] is None

def test_routing_from_the_router_when_the_layer_keeps_none(moe, tok):
    "Models whose MoE layer has no `.last_routing`: the router's logits (recorded by a hook) give the same choice."
    idx = torch.tensor([tok.encode("A big red ball rolled away.")])
    kept = probe(moe, idx)[2]
    hooks = [b.mlp.register_forward_hook(lambda m, i, o: setattr(m, "last_routing", None)) for b in moe.blocks]
    try: recomputed = probe(moe, idx)[2]
    finally:
        for h in hooks: h.remove()
    assert torch.equal(kept.sort(-1).values, recomputed.sort(-1).values)

def test_probe_ignores_forwards_of_other_threads(moe, tok):
    "A sampling panel may be generating with the same model on another thread while we look inside."
    stop, idx = threading.Event(), torch.tensor([tok.encode("One day, Sue found a shiny stone.")])
    def busy():
        x = torch.tensor([tok.encode("Ben ran")])
        while not stop.is_set():
            with torch.no_grad(): moe(x)
    th = threading.Thread(target=busy); th.start()
    try:
        for _ in range(5):
            _, qkvs, routing = probe(moe, idx)
            assert len(qkvs) == 2 and all(q.shape == (1, idx.size(1), 96) for q in qkvs)
            assert routing.shape == (2, idx.size(1), 2)
    finally: stop.set(); th.join()

def test_look_inside_cuts_long_prompts(dense, tok):
    ins = look_inside(dense, tok, "the cat " * 100, k=2, max_tokens=10)
    assert len(ins.tokens) == 10 and ins.attn.shape[-1] == 10 and len(ins.candidates) == 10
    with pytest.raises(ValueError, match="empty"): look_inside(dense, tok, "")

# --- sampling panel ------------------------------------------------------------------------------------------
def test_panel_generate_streams_a_story(dense, tok):
    panel = SamplingPanel(dense, tok, prompt="Once upon a time")
    panel.max_new_tokens.value, panel.seed.value, panel.temperature.value = 10, 3, 1.0
    text = panel.generate()
    assert text == panel.text and text.startswith("Once upon a time") and len(text) > len("Once upon a time")
    assert 0 < panel.n_tokens <= 10 and panel.tokens_per_s > 0
    assert "tokens/s" in panel.status.value and "<b>Once upon a time</b>" in panel.output.value
    assert not panel.generate_button.disabled and panel.stop_button.disabled
    assert panel.generate() == text, "same seed, same story"

def test_output_updates_token_by_token(dense, tok, monkeypatch):
    stream, _ = _slow_stream(delay=0)
    monkeypatch.setattr(wg, "stream", stream)
    panel = SamplingPanel(dense, tok, prompt="Hello")
    panel.max_new_tokens.value = 6
    seen = []
    panel.output.observe(lambda ch: seen.append(ch["new"]), names="value")
    panel.generate()
    assert len(seen) >= 7 and all(a in b for a, b in zip(["Hello"] + [" la" * i for i in range(1, 7)], seen)), seen

def test_panel_passes_slider_values_to_stream(dense, tok, monkeypatch):
    stream, calls = _slow_stream(delay=0)
    monkeypatch.setattr(wg, "stream", stream)
    panel = SamplingPanel(dense, tok, prompt="A dog")
    panel.temperature.value, panel.top_k.value, panel.top_p.value, panel.max_new_tokens.value = 0.5, 0, 1.0, 7
    panel.generate()
    c = calls[-1]
    assert (c["temperature"], c["top_k"], c["top_p"], c["max_new_tokens"]) == (0.5, None, None, 7)
    assert list(c["idx"]) == tok.encode("A dog") and isinstance(c["generator"], torch.Generator)
    assert panel.text == "A dog" + " la" * 7 and panel.n_tokens == 7
    panel.top_k.value, panel.top_p.value = 40, 0.9
    panel.generate()
    assert (calls[-1]["top_k"], calls[-1]["top_p"]) == (40, 0.9)

def test_stop_during_a_threaded_run(dense, tok, monkeypatch):
    stream, _ = _slow_stream(delay=0.02)
    monkeypatch.setattr(wg, "stream", stream)
    panel = SamplingPanel(dense, tok)
    panel.max_new_tokens.value = 400
    panel.generate_button.click()                                   # the button: runs on a thread
    th = panel._thread
    deadline = time.time() + 20
    while panel.n_tokens < 3 and time.time() < deadline: time.sleep(0.01)
    assert th.is_alive() and panel.generate_button.disabled and not panel.stop_button.disabled
    with pytest.raises(RuntimeError, match="already generating"): panel.generate()
    panel.stop_button.click()
    th.join(timeout=10)
    assert not th.is_alive()
    assert panel.stopped and 3 <= panel.n_tokens < 400 and "stopped" in panel.status.value
    assert not panel.generate_button.disabled and panel.stop_button.disabled

def test_end_of_text_ends_the_story(dense, tok, monkeypatch):
    def stream(model, idx, n, **kw): yield from tok.encode(" The end.") + [tok.eot_id] + tok.encode(" more")
    monkeypatch.setattr(wg, "stream", stream)
    panel = SamplingPanel(dense, tok, prompt="Hi.")
    assert panel.generate() == "Hi. The end." and "end of story" in panel.status.value

def test_errors_show_in_the_panel(dense, tok, monkeypatch):
    def stream(model, idx, n, **kw): raise ValueError("top_p must be in (0, 1]")
    monkeypatch.setattr(wg, "stream", stream)
    panel = SamplingPanel(dense, tok)
    with pytest.raises(ValueError): panel.generate()                 # from code: raised
    th = panel.generate(wait=False); th.join(10)                     # from the button: shown, not raised
    assert "top_p must be" in panel.status.value and not panel.generate_button.disabled

def test_model_picker_offline_and_local_folder(dense, tok, monkeypatch, tmp_path):
    panel = SamplingPanel(dense, tok)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert panel.load("TinyGPT-MoE (Hub)") is False
    assert "offline" in panel.model_info.value and "bundled default or a local folder" in panel.model_info.value
    assert panel.model is dense
    assert panel.load(FOLDER_CHOICE, str(tmp_path / "nope")) is False and "nope" in panel.model_info.value
    assert panel.load(FOLDER_CHOICE, "  ") is False and "path" in panel.model_info.value
    from tinygpt.hub import save_pretrained
    other = _tiny(tok, n_experts=4, top_k_experts=2, expert_hidden=64)
    save_pretrained(other, tmp_path / "mine")
    panel.picker.value, panel.folder.value = FOLDER_CHOICE, str(tmp_path / "mine")
    panel.load_button.click()
    assert panel.model is not dense and panel.model.config.n_experts == 4 and "MoE, 4 experts" in panel.model_info.value
    torch.testing.assert_close(panel.model.state_dict()["blocks.1.mlp.router.weight"], other.state_dict()["blocks.1.mlp.router.weight"])

def test_default_panel_uses_the_bundled_model(tok):
    from tinygpt import hub
    if not (hub.DEFAULT_DIR / "model.safetensors").exists(): pytest.skip(f"no bundled default model in {hub.DEFAULT_DIR} yet")
    panel = SamplingPanel(tokenizer=tok)
    assert panel.model is not None and DEFAULT_CHOICE in panel.model_info.value
    panel.max_new_tokens.value = 8
    assert panel.generate().startswith("Once upon a time")

# --- look inside ---------------------------------------------------------------------------------------------
def test_look_inside_panel(moe, dense, tok):
    look = LookInsidePanel(moe, tok, prompt="The cat sat")
    look.k.value = 3
    look.analyze_button.click()
    ins = look.insight
    assert ins.tokens == ["The", " cat", " sat"] and len(ins.candidates[0]) == 3
    assert look.candidates_image.value[:4] == b"\x89PNG" and look.routing_image.value[:4] == b"\x89PNG"
    assert "expert shares" in look.status.value and ins.candidates[0][0][0] in look.candidates_table.value.replace("&#x27;", "'")
    before = look.attention_image.value
    look.layer.value = 1; after_layer = look.attention_image.value
    look.head.value = 3
    assert len({before, after_layer, look.attention_image.value}) == 3
    d = LookInsidePanel(dense, tok); d.analyze()
    assert "dense model" in d.status.value and d.routing_image.value == b""
    d.prompt.value = ""; d.analyze()
    assert "empty" in d.status.value

# --- training dashboard --------------------------------------------------------------------------------------
def test_dashboard_records_and_draws():
    dash = TrainingDashboard(redraw_every=3600)
    dash.update({"step": 0, "loss": 10.9, "tokens_per_s": 1200.0})
    assert dash.image.value[:4] == b"\x89PNG"                        # first update draws
    first = dash.image.value
    dash.update({"iter": 10, "train_loss": 9.0, "tok_per_s": 1500})  # aliases; not redrawn yet (once an hour)
    assert dash.image.value == first and "step <b>10</b>" in dash.summary.value and "9.0000" in dash.summary.value
    dash(step=10, val_loss=9.5)                                      # an evaluation always redraws
    assert dash.image.value != first and "val loss 9.5000" in dash.summary.value and "1,500 tokens/s" in dash.summary.value
    dash.update({"step": 11, "note": "no numbers"})                  # nothing to plot: ignored
    assert [h["step"] for h in dash.history] == [0, 10, 10]

def test_dashboard_as_a_trainer_callback(tok, tmp_path):
    from tinygpt.training import Trainer
    dash = TrainingDashboard()
    data = torch.tensor(tok.encode("The sun was warm and the birds sang. " * 30))
    res = Trainer(_tiny(tok), data, data, run_dir=tmp_path / "run", callbacks=[dash], max_steps=3, batch_size=2, block_size=16,
                  eval_every=3, eval_batches=1, progress=False, device="cpu").fit()
    assert [h["step"] for h in dash.history] == [1, 2, 3] and dash.history[-1]["val_loss"] == pytest.approx(res.val_loss)
    assert all(h["tokens_per_s"] > 0 for h in dash.history) and "of 3" in dash.summary.value and "done" in dash.summary.value
    assert dash.image.value[:4] == b"\x89PNG"

def test_committed_notebook_has_no_widget_state():
    "Widget views may be in the outputs (the panels are shown), but not the widgets' saved state (large, and stale)."
    nb = json.loads((ROOT / "nbs" / "10_widgets.ipynb").read_text())
    assert "widgets" not in nb.get("metadata", {}), "widget state saved in nbs/10_widgets.ipynb: run nbdev-clean / clear it"

def _export_cells(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]
            if c["cell_type"] == "code" and "".join(c["source"]).lstrip().startswith("#| export")]

def test_lesson_grows_its_classes_in_small_cells():
    cells = _export_cells(ROOT / "nbs" / "10_widgets.ipynb")
    assert cells and max(len(c.splitlines()) for c in cells) <= 60
    assert sum("@patch" in c and "SamplingPanel" in c for c in cells) >= 2, "SamplingPanel is built up with @patch steps"

def test_attention_from_qkv_is_the_softmax_of_scaled_scores(tok):
    "An independent check of the identity-values trick: softmax(q k^T / sqrt(d)) with the causal mask."
    g = torch.Generator().manual_seed(0)
    qkv = torch.randn(1, 7, 3 * 16, generator=g)
    got = wg.attention_from_qkv(qkv, n_head=2)                       # (2, 7, 7)
    q, k = qkv[0, :, :16].view(7, 2, 8).transpose(0, 1), qkv[0, :, 16:32].view(7, 2, 8).transpose(0, 1)
    s = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(torch.ones(7, 7, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(got, s.softmax(-1), atol=1e-5, rtol=1e-4)

def test_figures_display_as_images(moe, tok):
    ins = look_inside(moe, tok, "Once upon a time", k=3)
    for fig in (wg.plot_candidates(ins), wg.plot_attention(ins), wg.plot_routing(ins)):
        img = wg.as_image(fig)
        assert img.data[:4] == b"\x89PNG" and img.format == "png"
