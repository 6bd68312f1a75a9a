"Lesson 11 (tinygpt.evaluate): the held-out report, sample metrics, the training-curve callback and eval_command."
import json, math
from pathlib import Path
import numpy as np, pytest, torch
import tinygpt.evaluate as E
from tinygpt.evaluate import (text_tokens, scored_targets, n_bytes, bits_per_byte, held_out_report, ngrams, distinct_n,
                              repeats, repetition, ngram_set, copied_share, draw_samples, sample_metrics, HeldOutCurve,
                              load_eval_data, eval_command, format_table, evaluate_model)
from tinygpt.data import prepare_tokens, split_stories, TokenFile
from tinygpt.hub import save_pretrained
from tinygpt.model import GPT, GPTConfig
from tinygpt.tokenizer import get_tokenizer, EOT_ID
from tinygpt.training import held_out_loss, train

STORIES = ["Once upon a time, there was a cat named Tom. Tom liked to play in the sun with a red ball.",
           "Once upon a time, a little girl named Lily found a shiny stone. She was very happy and showed it to her mom.",
           "Once upon a time, a dog ran to the park. He saw a big tree and a small bird. The bird sang a song."]
TEXT = "\n\n".join(STORIES * 4)
CFG = GPTConfig(vocab_size=50304, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.0)

@pytest.fixture(scope="module")
def tok(): return get_tokenizer()

@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0); return GPT(CFG).eval()

@pytest.fixture()
def saved(tmp_path, model):
    folder = tmp_path / "tiny-model"; save_pretrained(model, folder)
    data = tmp_path / "held_out.txt"; data.write_text(TEXT)
    return folder, data

def test_text_tokens_match_the_trainers_token_files(tmp_path, tok):
    tf = prepare_tokens(split_stories(TEXT), tmp_path / "t.bin", tok)
    ids = text_tokens(TEXT, tok)
    assert ids.tolist() == np.asarray(tf.tokens).tolist()
    assert (ids == EOT_ID).sum() == 12 and ids[-1] == EOT_ID
    with pytest.raises(ValueError, match="no stories"): text_tokens("  \n\n ", tok)

def test_report_scores_the_same_targets_as_held_out_loss(model, tok):
    ids = text_tokens(TEXT, tok); T = CFG.block_size
    for mw in (None, 3):
        ys = scored_targets(ids, T, mw)
        n = len(ys) // T
        assert len(ys) == n * T and n == (min((len(ids) - 1) // T, mw) if mw else (len(ids) - 1) // T)
        with torch.no_grad():
            logits = model(torch.as_tensor(ids[:n * T]).view(n, T))                    # (n, T, V)
        by_hand = torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.as_tensor(ys)).item()
        r = held_out_report(model, ids, tok, max_windows=mw)
        assert r["loss"] == pytest.approx(by_hand, rel=1e-5) == pytest.approx(held_out_loss(model, ids, max_windows=mw))
        assert r["tokens"] == n * T and r["windows"] == n and r["subset"] == (mw is not None)
        assert r["perplexity"] == pytest.approx(math.exp(r["loss"]))
        assert r["bits_per_byte"] == pytest.approx(r["loss"] * r["tokens"] / r["bytes"] / math.log(2))

def test_n_bytes_counts_utf8_and_one_byte_per_story_break(tok):
    assert n_bytes(tok.encode("cat"), tok) == 3
    assert n_bytes(tok.encode("café ☕"), tok) == len("café ☕".encode())      # 2-byte é, 3-byte emoji
    assert n_bytes(tok.encode("a b") + [EOT_ID] + tok.encode("c"), tok) == 5
    assert bits_per_byte(math.log(2), 10, 10) == pytest.approx(1.0)
    assert bits_per_byte(2.0, 100, 400) == pytest.approx(2.0 * 100 / 400 / math.log(2))

def test_ngram_metrics_by_hand():
    assert ngrams([1, 2, 3], 2) == [(1, 2), (2, 3)] and ngrams([1], 2) == []
    assert distinct_n([[1, 2, 1, 2]], 1) == 0.5
    assert distinct_n([[1, 2, 3], [1, 2, 3]], 2) == 0.5                       # pooled over samples
    assert distinct_n([[1], [2]], 2) is None
    assert repeats([1, 2, 3, 4] * 3, 4) == (5, 9)
    assert repetition([[1, 2, 3, 4] * 3, [9, 8, 7, 6, 5]], 4) == pytest.approx(5 / 11)
    assert repetition([[1, 2, 3], [4]], 4) is None and repetition([], 4) is None
    grams = ngram_set(np.arange(20), 8)
    assert len(grams) == 13 and (0, 1, 2, 3, 4, 5, 6, 7) in grams
    assert copied_share([list(range(5, 15))], grams) == 1.0
    assert copied_share([list(range(10, 20)) + [99] * 8], grams) == pytest.approx(3 / 11)
    assert copied_share([[1, 2]], grams) is None

def test_sample_metrics_ended_and_length():
    samples = [{"ids": [1, 2, 3, 4], "ended": True}, {"ids": [5, 6], "ended": False}]
    m = sample_metrics(samples, train_ngrams=set())
    assert m["ended_share"] == 0.5 and m["mean_length"] == 3 and m["copied_8"] is None and m["n_samples"] == 2
    assert sample_metrics(samples)["copied_8"] is None
    assert sample_metrics([])["ended_share"] is None

def test_draw_samples_are_seeded_per_sample(model, tok):
    a = draw_samples(model, tok, n_samples=3, seed=5, max_new_tokens=6)
    b = draw_samples(model, tok, n_samples=1, seed=5, max_new_tokens=6)
    c = draw_samples(model, tok, n_samples=3, seed=6, max_new_tokens=6)
    assert a[0] == b[0] and [s["prompt"] for s in a] == list(E.PROMPTS[:3])
    assert [s["ids"] for s in a] != [s["ids"] for s in c]
    for s in a:
        assert len(s["ids"]) + s["ended"] <= 6 and EOT_ID not in s["ids"] and s["text"].startswith(s["prompt"])

def test_held_out_curve_tracks_training(tmp_path, tok):
    ids = text_tokens(TEXT, tok)
    curve = HeldOutCurve(ids, every=2, max_windows=2)
    torch.manual_seed(0)
    r = train(GPT(CFG), ids, out_dir=tmp_path / "run", max_steps=5, batch_size=2, lr=1e-2, dtype="fp32", progress=False, callbacks=[curve])
    assert [t for t, _ in curve.points] == [2 * 2 * 16, 4 * 2 * 16, 5 * 2 * 16]   # steps 2, 4 and the last
    assert curve.points[-1][1] == pytest.approx(held_out_loss(r.model, ids, max_windows=2), rel=1e-5)
    assert curve.points[-1][1] < curve.points[0][1] + 1.0

def test_eval_command_prints_a_table_and_writes_json(saved, capsys, tok):
    folder, data = saved
    out = folder.parent / "reports" / "eval.json"
    assert eval_command(checkpoint=str(folder), data=str(data), out=str(out), n_samples=3, seed=1, max_new_tokens=8) == 0
    printed = capsys.readouterr().out
    assert "held-out loss" in printed and "tiny-model on held_out.txt" in printed and str(folder.parent) not in printed
    doc = json.loads(out.read_text())
    ids = text_tokens(TEXT, tok)
    from tinygpt.hub import load_checkpoint
    assert doc["held_out"]["loss"] == pytest.approx(held_out_loss(load_checkpoint(folder), ids), rel=1e-6)
    assert doc["samples"]["n_samples"] == 3 and len(doc["texts"]) == 3 and doc["samples"]["copied_8"] is None
    assert doc["settings"]["seed"] == 1 and out.stat().st_mode & 0o777 == 0o666 & ~_umask()

def _umask():
    import os
    m = os.umask(0o22); os.umask(m); return m

def test_eval_command_accepts_a_token_file(saved, tmp_path, capsys, tok):
    folder, data = saved
    tf = prepare_tokens(split_stories(TEXT), tmp_path / "held.bin", tok)
    assert eval_command(checkpoint=str(folder), data=str(tf.path), n_samples=0) == 0
    assert "held-out loss" in capsys.readouterr().out

def test_eval_command_errors_are_one_line(saved, tmp_path):
    folder, data = saved
    short = tmp_path / "short.txt"; short.write_text("Once upon a time.")
    cases = [(dict(n_samples=-1), ValueError, "n_samples must be"), (dict(seed=1.5), ValueError, "seed must be"),
             (dict(max_new_tokens=0), ValueError, "max_new_tokens must be"),
             (dict(checkpoint=str(tmp_path / "nope")), FileNotFoundError, "no checkpoint at"),
             (dict(checkpoint=str(folder), data=str(tmp_path / "nope.txt")), FileNotFoundError, "no held-out data at"),
             (dict(checkpoint=str(folder), data=str(short)), ValueError, "needs more than the model's context"),
             (dict(checkpoint=str(folder), data=str(tmp_path)), FileNotFoundError, "without valid-head.txt"),
             (dict(checkpoint=str(folder), data=str(data), out=str(tmp_path)), ValueError, "is a folder")]
    for kw, exc, msg in cases:
        with pytest.raises(exc, match=msg) as e: eval_command(**kw)
        assert "\n" not in str(e.value), kw

def test_failed_write_keeps_the_old_report(saved, monkeypatch):
    folder, data = saved
    out = folder.parent / "eval.json"; out.write_text("old")
    monkeypatch.setattr(E.json, "dumps", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError): eval_command(checkpoint=str(folder), data=str(data), out=str(out), n_samples=1, max_new_tokens=2)
    assert out.read_text() == "old" and [p.name for p in out.parent.iterdir() if p.name.startswith(".eval.json")] == []

def test_format_table_lines_up_models(model, tok):
    ids = text_tokens(TEXT, tok)
    r, _ = evaluate_model(model, ids, None, tok, n_samples=2, max_new_tokens=4, max_windows=2)
    lines = format_table({"a": r, "bee": r}).splitlines()
    assert lines[0].split() == ["metric", "a", "bee"] and len(lines) == len(E.ROWS) + 1
    assert len({len(l) for l in lines}) == 1 and "8-grams copied from training" in lines[8] and lines[8].endswith("-")
