"Data pipeline: atomic token files, header validation, bad input, real JSONL/parquet files, offline Hub message."
import json, os, signal, subprocess, sys, textwrap
import numpy as np
import pytest
import torch

from tinygpt.data import (SAMPLE_PATH, SAMPLE_EVAL_PATH, EVAL_START, TokenFile, get_batch, load_stories, prepare_tokens,
                          prepare_tinystories, read_text, split_stories, tinystories_split)
from tinygpt.tokenizer import EOT_ID, get_tokenizer

STORIES = ["Once upon a time, there was a cat.\n\nThe cat slept.", "One day, a dog ran fast.", "Lily smiled. The end."]


def _packed(stories):
    tok = get_tokenizer()
    return [t for s in stories for t in tok.encode(s) + [EOT_ID]]


def test_prepare_round_trip(tmp_path):
    tf = prepare_tokens(STORIES, tmp_path / "t.bin", source="unit")
    assert tf.tokens.dtype == np.uint16
    assert tf.tokens.tolist() == _packed(STORIES)
    assert tf.header["n_tokens"] == len(tf) == (tmp_path / "t.bin").stat().st_size // 2
    assert (tf.header["tokenizer"], tf.header["source"], tf.header["vocab_size"]) == ("gpt2", "unit", 50304)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bin", "t.json"]  # no temp files left


def test_interrupted_write_leaves_nothing_that_reads_complete(tmp_path):
    "Kill a preparation mid-write (SIGKILL, no cleanup possible): the old file must not read as complete."
    prepare_tokens(STORIES, tmp_path / "t.bin")
    code = textwrap.dedent(f"""
        import os, signal
        from tinygpt.data import prepare_tokens
        from tinygpt.tokenizer import get_tokenizer
        tok = get_tokenizer()
        class Dying:
            name, eot_id, n_vocab, vocab_size = tok.name, tok.eot_id, tok.n_vocab, tok.vocab_size
            calls = 0
            def encode_batch(self, texts):
                Dying.calls += 1
                if Dying.calls > 2: os.kill(os.getpid(), signal.SIGKILL)
                return tok.encode_batch(texts)
        prepare_tokens(["Once upon a time."] * 100, {str(tmp_path / 't.bin')!r}, Dying(), chunk=10)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    with pytest.raises(ValueError, match="interrupted"):
        TokenFile(tmp_path / "t.bin")
    # a rerun replaces the debris and cleans nothing it should not
    tf = prepare_tokens(STORIES, tmp_path / "t.bin")
    assert tf.tokens.tolist() == _packed(STORIES)


def test_exception_during_write_removes_temp_file(tmp_path):
    class Failing:
        name, eot_id, n_vocab, vocab_size = "gpt2", EOT_ID, 50257, 50304
        def encode_batch(self, texts): raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        prepare_tokens(STORIES, tmp_path / "t.bin", Failing())
    assert list(tmp_path.iterdir()) == []


def test_header_mismatch(tmp_path):
    tf = prepare_tokens(STORIES, tmp_path / "t.bin")
    data = tf.path.read_bytes(); del tf
    (tmp_path / "t.bin").write_bytes(data[:-2])
    with pytest.raises(ValueError, match="header mismatch"):
        TokenFile(tmp_path / "t.bin")
    (tmp_path / "t.bin").write_bytes(data + data)
    with pytest.raises(ValueError, match="header mismatch"):
        TokenFile(tmp_path / "t.bin")
    (tmp_path / "t.bin").write_bytes(data)
    hdr = json.loads((tmp_path / "t.json").read_text())
    for bad in ({**hdr, "n_tokens": "12"}, {k: v for k, v in hdr.items() if k != "tokenizer"}, [1, 2]):
        (tmp_path / "t.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError):
            TokenFile(tmp_path / "t.bin")
    (tmp_path / "t.json").write_text(json.dumps(hdr))
    assert len(TokenFile(tmp_path / "t")) == len(data) // 2
    with pytest.raises(FileNotFoundError):
        TokenFile(tmp_path / "missing.bin")


def test_bad_text_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_stories(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_stories(tmp_path / "empty.txt")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        load_stories(tmp_path / "blank.jsonl")
    (tmp_path / "latin.txt").write_bytes("Once upon a time, a caf\xe9.".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_stories(tmp_path / "latin.txt")
    (tmp_path / "cut.txt").write_bytes("Once upon a time, é".encode()[:-1])
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text(tmp_path / "cut.txt")
    (tmp_path / "x.csv").write_text("text\nhello\n")
    with pytest.raises(ValueError, match="use a .txt"):
        load_stories(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="no stories"):
        prepare_tokens([], tmp_path / "t.bin")
    assert not (tmp_path / "t.bin").exists()


def test_jsonl_and_parquet_real_files(tmp_path):
    import pyarrow as pa, pyarrow.parquet as pq
    with open(tmp_path / "train.jsonl", "w", encoding="utf-8") as f:
        for s in STORIES: f.write(json.dumps({"text": s, "n": len(s)}) + "\n")
    pq.write_table(pa.table({"text": STORIES, "n": [len(s) for s in STORIES]}), tmp_path / "valid.parquet")
    assert load_stories(tmp_path / "train.jsonl") == STORIES
    assert load_stories(tmp_path / "valid.parquet") == STORIES
    assert load_stories(tmp_path, "train") == STORIES          # folder: files named after the split
    assert load_stories(tmp_path, "validation") == STORIES
    pq.write_table(pa.table({"story": STORIES}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="no 'text' column"):
        load_stories(tmp_path / "other.parquet")
    assert load_stories(tmp_path / "other.parquet", text_field="story") == STORIES
    (tmp_path / "broken.jsonl").write_text('{"text": "a"\n')
    with pytest.raises(ValueError, match="could not read"):
        load_stories(tmp_path / "broken.jsonl")
    tf = prepare_tokens(load_stories(tmp_path / "valid.parquet"), tmp_path / "v.bin")
    assert tf.tokens.tolist() == _packed(STORIES)


def test_hub_offline_message(tmp_path):
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path),   # empty caches
           "HF_DATASETS_CACHE": str(tmp_path / "datasets"), "HF_HUB_CACHE": str(tmp_path / "hub")}
    code = "from tinygpt.data import load_stories; load_stories('hf', 'validation')"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ConnectionError: Could not load 'roneneldan/TinyStories'"), last
    assert "Use local files instead" in last and "Traceback" not in last


def test_split_stories_rules():
    text = "Once upon a time, A.\n\nMiddle.\n\nOnce there was B.\n\nEnd."
    assert split_stories(text) == ["Once upon a time, A.\n\nMiddle.", "Once there was B.\n\nEnd."]
    assert split_stories(text, "blank") == ["Once upon a time, A.", "Middle.", "Once there was B.", "End."]
    assert split_stories("A.\n\nB.<|endoftext|>C.") == ["A.\n\nB.", "C."]
    with pytest.raises(ValueError, match="unknown rule"):
        split_stories(text, "nope")


def test_get_batch():
    toks = np.arange(1000, dtype=np.uint16)
    x, y = get_batch(toks, 8, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.long
    assert torch.equal(y - x, torch.ones_like(x))                       # contiguous and shifted by one
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(8, 15, dtype=torch.long))
    again = get_batch(toks, 8, 16, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], x)                                     # reproducible from the generator
    starts = get_batch(np.arange(20, dtype=np.uint16), 4000, 4, torch.Generator().manual_seed(1))[0][:, 0]
    assert set(starts.tolist()) == set(range(16))                       # every window start, none past the end
    with pytest.raises(ValueError):
        get_batch(toks[:16], 1, 16)


def test_course_split_and_sample(tmp_path, monkeypatch):
    sample = read_text(SAMPLE_PATH)
    assert 200_000 < len(sample.encode()) < 400_000
    assert "CDLA-Sharing-1.0" in (SAMPLE_PATH.parent / "README.md").read_text()
    held_out = read_text(SAMPLE_EVAL_PATH)
    assert not set(split_stories(held_out)) & set(split_stories(sample))
    import tinygpt.data
    monkeypatch.setattr(tinygpt.data, "shared_data_dir", lambda: None)   # as on a machine without the shared folder
    assert tinystories_split() == (sample, held_out)
    train_tf, eval_tf = prepare_tinystories(tmp_path)
    assert "bundled sample" in train_tf.header["source"] and train_tf.header["n_stories"] == len(split_stories(sample))
    assert len(eval_tf) > 5000


def test_course_split_shared(shared_dir):
    d = shared_dir / "data" / "tinystories"
    train, ev = tinystories_split(d)
    valid = read_text(d / "valid-head.txt")
    assert ev == valid[EVAL_START:] and train.endswith(valid[:EVAL_START])
    assert read_text(SAMPLE_PATH) in train and read_text(SAMPLE_EVAL_PATH) in train   # the bundled sample is training text
    assert ev[5000:7000] not in train
