"Data pipeline: atomic token files, header validation, bad input, real JSONL/parquet files, offline Hub message."
import json, os, signal, subprocess, sys, textwrap
import numpy as np
import pytest
import torch

from tinygpt.data import (ASSETS, SAMPLE_PATH, SAMPLE_EVAL_PATH, TRAIN_PATH, EVAL_PATH, EVAL_START, TokenFile, atomic_write,
                          get_batch, load_stories, prepare_tokens, prepare_tinystories, read_text, split_files, split_stories,
                          tinystories_split)
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
    (tmp_path / "broken.jsonl").write_text('{"text": "a"}\n\n{"text": "a"\n')
    with pytest.raises(ValueError, match=r"broken.jsonl, line 3: not valid JSON"):
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


def test_bundled_course_split(tmp_path):
    train, ev = tinystories_split()
    assert (train, ev) == (read_text(TRAIN_PATH), read_text(EVAL_PATH))
    assert (SAMPLE_PATH, SAMPLE_EVAL_PATH) == (TRAIN_PATH, EVAL_PATH)             # the older names still work
    assert 700_000 < len(train) < 900_000 and 150_000 < len(ev) < 250_000
    readme = (ASSETS / "README.md").read_text()
    assert "CDLA-Sharing-1.0" in readme and "roneneldan/TinyStories" in readme and "Eldan" in readme
    assert not set(split_stories(ev)) & set(split_stories(train))
    assert sorted(p.name for p in ASSETS.iterdir()) == ["README.md", "eval.txt", "train.txt"]   # no stale sample files
    assert tinystories_split(ASSETS) == (train, ev)                                # a train.txt + eval.txt folder
    train_tf, eval_tf = prepare_tinystories(tmp_path)
    assert "bundled" in train_tf.header["source"] and train_tf.header["n_stories"] == len(split_stories(train))
    assert str(tmp_path) not in train_tf.header["source"] and str(tmp_path) not in repr(train_tf)   # no machine paths
    assert len(eval_tf) > 40_000
    with pytest.raises(FileNotFoundError, match="no course split"):
        tinystories_split(tmp_path)


def test_bundled_split_equals_split_cut_from_shared(shared_dir):
    "The bundled files are exactly train-head.txt + valid-head.txt[:600000] and valid-head.txt[600000:]."
    d = shared_dir / "data" / "tinystories"
    if not (d / "valid-head.txt").is_file(): pytest.skip(f"no TinyStories excerpts in {d}")
    assert tinystories_split(d) == tinystories_split()
    valid = read_text(d / "valid-head.txt")
    train, ev = tinystories_split()
    assert ev == valid[EVAL_START:] and train.endswith(valid[:EVAL_START]) and train.startswith(read_text(d / "train-head.txt").rstrip())
    assert ev[5000:7000] not in train


def test_library_never_looks_outside_the_package():
    import inspect, tinygpt.data
    src = inspect.getsource(tinygpt.data)
    assert "shared" not in src and "TINYGPT_DATA" not in src and not hasattr(tinygpt.data, "shared_data_dir")


def test_token_file_of_another_tokenizer_is_refused(tmp_path):
    prepare_tokens(STORIES, tmp_path / "t.bin")
    hdr = json.loads((tmp_path / "t.json").read_text())
    (tmp_path / "t.json").write_text(json.dumps({**hdr, "tokenizer": "cl100k_base"}))
    with pytest.raises(ValueError, match="tokenised with 'cl100k_base', not 'gpt2'"):
        TokenFile(tmp_path / "t.bin")
    assert len(TokenFile(tmp_path / "t.bin", tokenizer=None)) == hdr["n_tokens"]   # explicitly any tokenizer
    with pytest.raises(ValueError, match="cl100k_base"):
        TokenFile(tmp_path / "t.bin", tokenizer=get_tokenizer())
    train_tf, _ = prepare_tinystories(tmp_path / "course")                         # a reused file is checked too
    h = json.loads(train_tf.header_path.read_text()); train_tf.header_path.write_text(json.dumps({**h, "tokenizer": "cl100k_base"}))
    assert prepare_tinystories(tmp_path / "course")[0].header["tokenizer"] == "gpt2"   # prepared again, not reused


@pytest.mark.parametrize("key,value", [("n_tokens", True), ("n_tokens", 12.0), ("n_tokens", None), ("eot_id", "50256"),
                                       ("vocab_size", False), ("tokenizer", 2), ("source", None), ("n_vocab", 1e9),
                                       ("dtype", "int32"), ("eot_id", 60000), ("n_tokens", -3)])
def test_header_with_wrong_types_is_refused(tmp_path, key, value):
    prepare_tokens(STORIES, tmp_path / "t.bin")
    hdr = json.loads((tmp_path / "t.json").read_text())
    (tmp_path / "t.json").write_text(json.dumps({**hdr, key: value}))
    with pytest.raises(ValueError, match=key if key != "n_tokens" or value == -3 else "wrong type") as e:
        TokenFile(tmp_path / "t.bin")
    assert "\n" not in str(e.value)


def test_folder_takes_only_the_splits_own_files(tmp_path):
    (tmp_path / "train.txt").write_text("Once upon a time, A.\n")
    (tmp_path / "train-00001.jsonl").write_text('{"text": "B."}\n')
    (tmp_path / "training_notes_DO_NOT_USE.txt").write_text("Once upon a time, SECRET.\n")
    (tmp_path / "trainer.jsonl").write_text('{"text": "SECRET"}\n')
    (tmp_path / "train.md").write_text("SECRET")
    (tmp_path / "validation.parquet").write_bytes(b"")
    (tmp_path / "valid-head.txt").write_text("Once upon a time, V.\n")
    assert [p.name for p in split_files(tmp_path)] == ["train-00001.jsonl", "train.txt"]
    assert load_stories(tmp_path) == ["B.", "Once upon a time, A."]
    assert [p.name for p in split_files(tmp_path, "valid")] == ["valid-head.txt", "validation.parquet"]
    (tmp_path / "validation.parquet").unlink()
    assert load_stories(tmp_path, "validation") == ["Once upon a time, V."]
    with pytest.raises(FileNotFoundError, match=r"no 'test' files in .*expected test\.txt.*found train-00001.jsonl, train.md, train.txt"):
        load_stories(tmp_path, "test")


@pytest.mark.parametrize("line,what", [('{"text": 3}', "int"), ('{"text": null}', "NoneType"), ('{"text": ["a"]}', "list"),
                                       ('{"text": {"a": 1}}', "dict"), ('"just a string"', "JSON object"), ('[1, 2]', "JSON object")])
def test_jsonl_text_values_must_be_strings(tmp_path, line, what):
    (tmp_path / "s.jsonl").write_text('{"text": "Once upon a time."}\n' + line + "\n")
    with pytest.raises(ValueError, match=f"s.jsonl, line 2: .*{what}"):
        load_stories(tmp_path / "s.jsonl")


def test_json_list_file(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps([{"text": s} for s in STORIES]))
    assert load_stories(tmp_path / "s.json") == STORIES
    (tmp_path / "s.json").write_text(json.dumps([{"text": "a"}, {"text": 1.5}]))
    with pytest.raises(ValueError, match="item 1: 'text' is float"):
        load_stories(tmp_path / "s.json")


def test_parquet_text_values_must_be_strings(tmp_path):
    import pyarrow as pa, pyarrow.parquet as pq
    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp_path / "ints.parquet")
    with pytest.raises(ValueError, match="holds int64 values, not strings"):
        load_stories(tmp_path / "ints.parquet")
    pq.write_table(pa.table({"text": ["Once.", None]}), tmp_path / "nulls.parquet")
    with pytest.raises(ValueError, match="1 missing"):
        load_stories(tmp_path / "nulls.parquet")
    pq.write_table(pa.table({"text": pa.array(STORIES, pa.large_string())}), tmp_path / "large.parquet")
    assert load_stories(tmp_path / "large.parquet") == STORIES
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="could not read .* as parquet"):
        load_stories(tmp_path / "junk.parquet")


@pytest.mark.parametrize("limit", [-1, 0, 2.5, True, "3"])
def test_load_stories_bad_limit(limit):
    with pytest.raises(ValueError, match="limit must be a whole number"):
        load_stories(TRAIN_PATH, limit=limit)


def test_load_stories_limit():
    all_ = load_stories(TRAIN_PATH)
    assert load_stories(TRAIN_PATH, limit=3) == all_[:3] and load_stories(TRAIN_PATH, limit=10**9) == all_
    assert load_stories(TRAIN_PATH, limit=np.int64(2)) == all_[:2]


@pytest.mark.parametrize("bs,err,msg", [(0, ValueError, "block_size must be at least 1"), (-5, ValueError, "at least 1"),
                                        (2.0, TypeError, "block_size must be a whole number"), (True, TypeError, "whole number")])
def test_get_batch_bad_block_size(bs, err, msg):
    with pytest.raises(err, match=msg):
        get_batch(np.arange(100, dtype=np.uint16), 4, bs)


@pytest.mark.parametrize("b", [0, -1, 1.5, False])
def test_get_batch_bad_batch_size(b):
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        get_batch(np.arange(100, dtype=np.uint16), b, 8)


@pytest.mark.parametrize("tokens,err,msg", [
    (np.arange(100, dtype=np.float32), TypeError, "integer ids"), (torch.arange(100.0), TypeError, "integer ids"),
    (torch.ones(100, dtype=torch.bool), TypeError, "integer ids"), (np.ones(100, dtype=bool), TypeError, "integer ids"),
    (torch.ones(100, dtype=torch.complex64), TypeError, "integer ids"), ([0.5] * 100, TypeError, "integer ids"),
    (np.arange(100).reshape(10, 10), ValueError, r"1-D.*\(10, 10\)"), (torch.arange(100).reshape(4, 25), ValueError, "1-D")])
def test_get_batch_bad_tokens(tokens, err, msg):
    with pytest.raises(err, match=msg):
        get_batch(tokens, 2, 4)


def test_get_batch_accepts_every_integer_stream(tmp_path):
    ref = get_batch(np.arange(50, dtype=np.uint16), 3, 5, torch.Generator().manual_seed(0))
    for toks in (np.arange(50, dtype=np.int32), list(range(50)), torch.arange(50), torch.arange(50, dtype=torch.int16)):
        got = get_batch(toks, np.int64(3), 5, torch.Generator().manual_seed(0))
        assert all(torch.equal(a, b) for a, b in zip(got, ref))


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_get_the_usual_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.txt", lambda f: f.write(b"x"))
        tf = prepare_tokens(STORIES, tmp_path / "t.bin")
    finally: os.umask(old)
    for p in (tmp_path / "a.txt", tf.path, tf.header_path):
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, (p.name, oct(p.stat().st_mode))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "t.bin", "t.json"]
