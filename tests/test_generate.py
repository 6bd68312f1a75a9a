"tinygpt.generate: the decoding loop's bookkeeping (with a fake model whose answers are known) and a few real-model checks."
import platform, types
import pytest, torch, torch.nn.functional as F
import tinygpt.generate as gen
from tinygpt.generate import generate, stream, complete, sample_next, check_sampling_args, MAX_NEW_TOKENS
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

def test_generate_and_stream_never_patch_the_callers_modules():
    m = tiny(); s = stream(m, [1, 2, 3], 10, temperature=0)
    next(s); assert not patched(m)
    s.close(); generate(m, [1, 2, 3], 5, temperature=0); assert not patched(m)

def test_huge_max_new_tokens_is_refused_and_nothing_is_allocated_up_front():
    for bad in (10**12, 1e12, MAX_NEW_TOKENS + 1, True, -1, 2.5):
        with pytest.raises(ValueError, match="max_new_tokens"): generate(Successor(), [1], bad)
    sizes = []
    class Spy(Successor):
        def hidden_states(self, ids, kv_cache=None):
            sizes.append(ids.untyped_storage().nbytes()); return super().hidden_states(ids, kv_cache)
    out = generate(Spy(block_size=8), torch.tensor([[EOT_ID - 3]] * 4), MAX_NEW_TOKENS, temperature=0)   # stops at EOT
    assert out.shape == (4, 4) and max(sizes) <= 4 * 2 * 8 * 8       # the loop's buffer: two windows of int64, not 1e6 tokens

def test_long_run_slides_its_buffer():
    m = Successor(block_size=8)
    out = generate(m, [0], 100, temperature=0, stop_at_eot=False)
    assert out.tolist() == list(range(101))
    assert generate(Successor(block_size=8), [0], 100, temperature=0, stop_at_eot=False, use_cache=False).tolist() == list(range(101))

@pytest.mark.parametrize("bad,match", [(dict(repetition_penalty=1e-40), "between 0.01 and 100"), (dict(repetition_penalty=1e6), "repetition_penalty"),
    (dict(repetition_penalty=float("nan")), "repetition_penalty"), (dict(temperature=1e-40), "temperature"), (dict(temperature=float("inf")), "temperature"),
    (dict(temperature="1"), "temperature"), (dict(top_k=2.5), "top_k"), (dict(top_k=True), "top_k"), (dict(top_p=float("nan")), "top_p")])
def test_sampling_ranges(bad, match):
    with pytest.raises(ValueError, match=match) as e: check_sampling_args(5, **bad)
    assert "\n" not in str(e.value)
    check_sampling_args(5, temperature=0, repetition_penalty=0.01); check_sampling_args(5, temperature=100, repetition_penalty=100)

def test_float_bool_complex_token_ids_are_refused():
    for bad in ([1.0, 2.0], torch.tensor([1.5]), torch.tensor([True]), torch.tensor([1 + 0j])):
        with pytest.raises(TypeError, match="integers"): generate(tiny(), bad, 2)
    m = tiny()
    for bad in (torch.tensor([[1.0, 2.0]]), torch.tensor([[True]]), torch.tensor([[1 + 0j]])):
        with pytest.raises(TypeError, match="integer token ids"): m(bad)

def test_nan_weights_give_a_clear_error():
    m = tiny()
    with torch.no_grad(): m.ln_f.weight[0] = float("nan")
    for kw in (dict(temperature=0), dict(temperature=1.0, top_k=5)):
        with pytest.raises(ValueError, match="NaN or infinite logits"): generate(m, [1, 2], 5, **kw)
        with pytest.raises(ValueError, match="NaN or infinite logits"): list(stream(m, [1, 2], 5, **kw))

def test_threads_share_one_model_in_train_mode():
    "Four threads decoding greedily with one model in train mode: one thread's result each, and the mode left as it was."
    import threading
    m = tiny(); m.train()
    prompts = [torch.randint(0, 512, (6,), generator=torch.Generator().manual_seed(i)) for i in range(4)]
    m.eval(); want = [generate(m, p, 30, temperature=0, stop_at_eot=False) for p in prompts]; m.train()
    got, errors, barrier = [None] * 4, [], threading.Barrier(4)
    def work(i):
        try:
            barrier.wait()
            for _ in range(3): got[i] = generate(m, prompts[i], 30, temperature=0, stop_at_eot=False)
        except Exception as e: errors.append(e)
    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert not errors and all(torch.equal(a, b) for a, b in zip(got, want)) and m.training
    m.eval(); generate(m, [1], 2); assert not m.training

def test_cpu_ids_are_range_checked_every_call(monkeypatch):
    "On the CPU the id-range check is free and runs on every call (off the CPU: the first call only, see lesson 04)."
    m = tiny(); reads = []
    orig = torch.Tensor.aminmax
    monkeypatch.setattr(torch.Tensor, "aminmax", lambda self, *a, **k: reads.append(1) or orig(self, *a, **k))
    x = torch.randint(0, 512, (1, 4))
    with torch.no_grad():
        m(x); m(x)
    assert len(reads) == 2                                              # CPU: every call
    with pytest.raises(ValueError, match="vocab_size=512"): m(torch.tensor([[512]]))

@pytest.mark.slow
def test_benchmark_runs(capsys):
    import runpy, sys
    from pathlib import Path
    bench = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generate.py"))
    assert bench["main"](["--quick", "--new-tokens", "4", "--repeats", "1"]) == 0
    assert "KV cache" in capsys.readouterr().out
