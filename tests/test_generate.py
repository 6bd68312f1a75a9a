"tinygpt.generate: the decoding loop's bookkeeping (with a fake model whose answers are known) and a few real-model checks."
import platform, types
import pytest, torch, torch.nn.functional as F
import tinygpt.generate as gen
from tinygpt.generate import generate, stream, complete, sample_next, fast_linear, fast_linears, onednn_ok
from tinygpt.model import GPT, GPTConfig
from tinygpt.moe import config_from_dict
from tinygpt.tokenizer import EOT_ID

class Successor(torch.nn.Module):
    "A fake language model: the next token is always (last token + 1) mod V. Records how many positions each call gets."
    def __init__(self, vocab_size=EOT_ID + 48, block_size=8):
        super().__init__()
        self.config, self.w, self.calls = GPTConfig(vocab_size=vocab_size, block_size=block_size), torch.nn.Parameter(torch.zeros(1)), []
    def new_cache(self): return types.SimpleNamespace(length=0)
    def hidden_states(self, ids, kv_cache=None):
        T = ids.shape[1]; self.calls.append(T)
        past = 0 if kv_cache is None else kv_cache.length
        assert past + T <= self.config.block_size, "the loop overfilled the context"
        if kv_cache is not None: kv_cache.length += T
        return F.one_hot(ids, self.config.vocab_size).float()            # (B, T, V)
    def lm_head(self, h): return 10 * h.roll(1, dims=-1)

def test_batch_rows_pad_with_eot_until_all_finish():
    m = Successor()
    out = generate(m, torch.tensor([[EOT_ID - 2], [EOT_ID - 1]]), 10, temperature=0)
    assert out.tolist() == [[EOT_ID - 2, EOT_ID - 1, EOT_ID], [EOT_ID - 1, EOT_ID, EOT_ID]]
    out = generate(m, torch.tensor([[EOT_ID - 2], [5]]), 4, temperature=0)
    assert out.tolist() == [[EOT_ID - 2, EOT_ID - 1, EOT_ID, EOT_ID, EOT_ID], [5, 6, 7, 8, 9]]

def test_stream_yields_the_eot_then_stops():
    assert list(stream(Successor(), [EOT_ID - 3], 10, temperature=0)) == [EOT_ID - 2, EOT_ID - 1, EOT_ID]
    assert len(list(stream(Successor(), [EOT_ID - 3], 10, temperature=0, stop_at_eot=False))) == 10

@pytest.mark.parametrize("use_cache", [True, False])
def test_window_policy(use_cache):
    m = Successor(block_size=8)
    out = generate(m, list(range(3)), 20, temperature=0, use_cache=use_cache)
    assert out.tolist() == list(range(23))
    if use_cache: assert m.calls == [3] + [1] * 5 + ([4] + [1] * 4) * 2 + [4] + [1] * 3  # prefill, then re-prefill half a window
    else: assert m.calls == list(range(3, 9)) + [4, 5, 6, 7, 8] * 2 + [4, 5, 6, 7]                       # the same windows, recomputed

def test_long_prompt_cropped_from_the_left():
    m = Successor(block_size=8)
    assert generate(m, list(range(30)), 2, temperature=0).tolist() == list(range(32))
    assert m.calls[0] == 8

def test_output_is_a_normal_tensor():
    out = generate(Successor(), [1, 2], 3, temperature=0)
    assert not out.is_inference()
    emb = torch.nn.Embedding(10, 2); emb(out).sum().backward()      # usable as input to a model being trained

def tiny(**kw):
    "A small random model: dense, or MoE when `kw` has MoE fields."
    torch.manual_seed(0)
    return GPT(config_from_dict(dict(vocab_size=512, block_size=12, n_layer=2, n_head=2, n_embd=32, dropout=0.1, **kw))).eval()

@pytest.mark.parametrize("kw", [{}, {"n_experts": 4, "top_k_experts": 2, "expert_hidden": 32}])
def test_cache_matches_no_cache_across_window(kw):
    m = tiny(**kw)
    p = torch.randint(0, 512, (2, 5), generator=torch.Generator().manual_seed(0))      # 25 new tokens: 2 re-prefills
    for args in (dict(temperature=0), dict(temperature=0, repetition_penalty=1.5),
                 dict(temperature=1.0, top_k=100, top_p=0.9, repetition_penalty=1.2)):
        a = generate(m, p, 25, stop_at_eot=False, generator=torch.Generator().manual_seed(3), **args)
        b = generate(m, p, 25, stop_at_eot=False, generator=torch.Generator().manual_seed(3), use_cache=False, **args)
        assert torch.equal(a, b), args

def test_generate_restores_training_mode_and_dropout_is_off():
    m = tiny(); m.train()
    a = generate(m, [1, 2, 3], 10, temperature=0); assert m.training
    assert torch.equal(a, generate(m, [1, 2, 3], 10, temperature=0))   # dropout 0.1 would make greedy runs differ

def test_top_k_sampling_stays_in_the_top_k():
    logits = torch.randn(2000, 50)
    top = logits.topk(5, dim=-1).indices
    nxt = sample_next(logits, temperature=1.5, top_k=5, generator=torch.Generator().manual_seed(0))
    assert (nxt == top).any(-1).all()

@pytest.mark.parametrize("bad,name", [(dict(max_new_tokens=-1), "max_new_tokens"), (dict(temperature=-1), "temperature"),
    (dict(top_k=0), "top_k"), (dict(top_p=0), "top_p"), (dict(top_p=1.01), "top_p"), (dict(repetition_penalty=-1), "repetition_penalty")])
def test_bad_arguments_name_themselves(bad, name):
    kw = {"max_new_tokens": 3, **bad}
    for fn in (generate, stream):
        with pytest.raises(ValueError, match=name): fn(Successor(), [1], **kw)

def test_complete_text():
    from tinygpt.tokenizer import get_tokenizer
    tok = get_tokenizer()
    text = complete(Successor(), tok, "Hello", 3, temperature=0)
    ids = tok.encode("Hello")
    assert text == "Hello" + tok.decode([ids[-1] + 1, ids[-1] + 2, ids[-1] + 3])
    assert complete(Successor(), tok, "Hello", 3, temperature=0, include_prompt=False) == text[len("Hello"):]

def patched(m): return [x for x in m.modules() if "forward" in vars(x)]

@pytest.mark.parametrize("kw", [{}, {"n_experts": 4, "top_k_experts": 2, "expert_hidden": 32}])
def test_fast_linears_match_plain_and_clean_up(kw):
    m, x = tiny(**kw), torch.randint(0, 512, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        plain = m(x)
        with fast_linears(m):
            assert len(patched(m)) == sum(isinstance(l, torch.nn.Linear) for l in m.modules())
            fast = m(x)
    assert torch.allclose(fast, plain, atol=1e-5) and not patched(m)
    with pytest.raises(ZeroDivisionError):
        with fast_linears(m): 1 / 0
    assert not patched(m)                                              # an error inside leaves the model plain

def test_stream_closed_early_leaves_the_model_plain():
    m = tiny(); s = stream(m, [1, 2, 3], 10, temperature=0)
    next(s); assert patched(m)                                         # patched while the stream is open
    s.close(); assert not patched(m)

def test_fast_linears_switched_off(monkeypatch):
    m = tiny()
    monkeypatch.setenv("TINYGPT_KERNELS", "torch")
    with fast_linears(m): assert not patched(m)
    monkeypatch.delenv("TINYGPT_KERNELS")
    compiled_like = types.SimpleNamespace(_orig_mod=m, modules=m.modules)   # what torch.compile returns looks like this
    with fast_linears(compiled_like): assert not patched(m)

def test_fast_linear_takes_onednn_only_where_safe(monkeypatch):
    calls = []
    monkeypatch.setattr(gen, "onednn_linear", lambda x, w, b=None: calls.append(tuple(x.shape)) or F.linear(x, w, b))
    w = torch.randn(8, 4)
    with torch.no_grad():
        for x in (torch.randn(2, 3, 4), torch.randn(4), torch.randn(33, 4), torch.randn(0, 4)):
            assert torch.allclose(fast_linear(x, w), F.linear(x, w))
        fast_linear(torch.randn(1, 4).double(), w.double())           # float64: F.linear
    y = fast_linear(torch.randn(1, 4), w.clone().requires_grad_())    # autograd on: F.linear, which has a backward
    assert y.requires_grad
    assert calls == ([(2, 3, 4), (4,)] if onednn_ok() else [])
    monkeypatch.setattr(gen, "onednn_ok", lambda: False); calls.clear()
    with torch.no_grad(): fast_linear(torch.randn(1, 4), w)
    assert calls == []

@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="oneDNN is part of PyTorch's x86 wheels")
def test_onednn_is_usable_on_x86():
    assert onednn_ok()                                                 # else CPU decoding silently loses its fast path

@pytest.mark.slow
def test_benchmark_runs(capsys):
    import runpy, sys
    from pathlib import Path
    bench = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generate.py"))
    assert bench["main"](["--quick", "--new-tokens", "4", "--repeats", "1"]) == 0
    assert "KV cache" in capsys.readouterr().out
