"Tokenizer: the offline loading plumbing of lesson 00 (bundled files, hash checks, cache fallback, the download error)."
import os, shutil, warnings
import pytest
import tiktoken
from tinygpt.tokenizer import (EOT, EOT_ID, GPT2_SHA256, N_VOCAB, TIKTOKEN_DIR, VOCAB_SIZE, _env, bundled_ranks, cache_name,
                               get_tokenizer, gpt2_encoding, pad_vocab)

REFUSE = dict(HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
              http_proxy="http://127.0.0.1:9", NO_PROXY="", no_proxy="")   # every download fails fast


def test_bundled_files_are_a_tiktoken_cache():
    assert sorted(p.name for p in TIKTOKEN_DIR.iterdir() if p.name != "README.md") == sorted(cache_name(f) for f in GPT2_SHA256)
    assert len(bundled_ranks()) == N_VOCAB - 1


def test_env_sets_removes_and_restores(monkeypatch):
    monkeypatch.setenv("TINYGPT_T1", "old"); monkeypatch.delenv("TINYGPT_T2", raising=False)
    with _env(TINYGPT_T1=None, TINYGPT_T2="new"):
        assert "TINYGPT_T1" not in os.environ and os.environ["TINYGPT_T2"] == "new"
    assert os.environ["TINYGPT_T1"] == "old" and "TINYGPT_T2" not in os.environ
    with pytest.raises(KeyError):
        with _env(TINYGPT_T1="x"): raise KeyError("boom")
    assert os.environ["TINYGPT_T1"] == "old"


def test_bundled_read_does_not_touch_the_cache(tmp_path):
    with _env(TIKTOKEN_CACHE_DIR=str(tmp_path)): bundled_ranks()
    assert list(tmp_path.iterdir()) == []


def test_damaged_file_is_ignored_with_a_warning(tmp_path):
    for p in TIKTOKEN_DIR.iterdir(): shutil.copy(p, tmp_path / p.name)
    (tmp_path / cache_name("vocab.bpe")).write_bytes(b"#version: 0.2\nh e\n")
    with pytest.warns(UserWarning, match="SHA-256 mismatch"):
        assert bundled_ranks(tmp_path) is None


def test_missing_files_and_no_download_give_a_clear_error(tmp_path):
    with _env(TIKTOKEN_CACHE_DIR=str(tmp_path), **REFUSE):
        with pytest.raises(RuntimeError, match="neither downloaded nor found in a cache") as e:
            gpt2_encoding(folder=tmp_path)
    msg = str(e.value)
    assert "TIKTOKEN_CACHE_DIR" in msg and "internet" in msg and "shared" not in msg and "\n" not in msg


def test_fallback_through_a_cache_folder(tmp_path):
    with _env(TIKTOKEN_CACHE_DIR=str(TIKTOKEN_DIR), **REFUSE):
        enc = gpt2_encoding(folder=tmp_path)       # no bundled files here: tiktoken's loader finds the cache
    assert enc.encode_ordinary("Once upon a time") == gpt2_encoding().encode_ordinary("Once upon a time")


def test_agrees_with_tiktokens_own_gpt2():
    with _env(TIKTOKEN_CACHE_DIR=str(TIKTOKEN_DIR), **REFUSE): theirs = tiktoken.get_encoding("gpt2")
    tok = get_tokenizer()
    for t in ["Once upon a time, there was a little girl named Lily.", "Hello world! <|endoftext|> 123",
              "  spaces\n\ttabs  ", "émoji 🐶", "x" * 1000]:
        assert tok.encode(t) == theirs.encode_ordinary(t)
    assert tok.encode(EOT) != [EOT_ID] and tok.decode([EOT_ID]) == EOT


def test_decode_and_pad_vocab():
    tok = get_tokenizer()
    ids = tok.encode("The end.")
    assert tok.decode(ids + [VOCAB_SIZE - 1]) == "The end."
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([-1])
    assert [pad_vocab(n) for n in (1, 64, 65, N_VOCAB)] == [64, 64, 128, VOCAB_SIZE]
