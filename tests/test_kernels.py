"Fallback and guard tests for tinygpt.kernels (liger-kernel missing, broken, or present on a CPU-only machine)."
import subprocess, sys, warnings
from types import SimpleNamespace
import pytest, torch, torch.nn.functional as F
import tinygpt.kernels as K
from tinygpt.moe import Expert, MoE, validate_moe_config, silu_mul

@pytest.fixture(autouse=True)
def fresh_kernels(monkeypatch):
    "Every test starts and ends with an empty liger cache and no forced backend."
    monkeypatch.delenv("TINYGPT_KERNELS", raising=False)
    K._liger.cache_clear(); K._liger_ok.cache_clear(); K._LIGER_BROKEN.clear()
    yield
    K._LIGER_BROKEN.clear()   # (the patched functions are restored by monkeypatch after this)

@pytest.fixture
def gpu_machine(monkeypatch):
    "Pretend to be Linux with a CUDA device (the tensors themselves stay on the CPU)."
    monkeypatch.setattr(sys, "platform", "linux"); monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

def fake_liger(silu_mul=None, flce=None):
    return lambda: SimpleNamespace(silu_mul=silu_mul, flce=flce, error=None)

class Boom:
    "A liger stand-in whose kernels must never run."
    calls = 0
    @classmethod
    def apply(cls, *a): cls.calls += 1; raise RuntimeError("triton: no GPU")
    def __init__(self, **kw): pass
    def __call__(self, *a): Boom.calls += 1; raise RuntimeError("triton: no GPU")

def test_import_without_liger_or_triton():
    code = ("import sys; sys.modules['liger_kernel'] = None; sys.modules['triton'] = None\n"
            "import torch, tinygpt, tinygpt.kernels as K, tinygpt.moe\n"
            "torch.cuda.is_available = lambda: True\n"
            "b = K.kernel_backend('cuda'); assert b.name == 'torch' and 'not usable' in b.reason and 'No module named' in b.reason, b\n"
            "x = torch.randn(4, 3); assert torch.allclose(K.swiglu(x, x), torch.nn.functional.silu(x) * x)\n"
            "print(repr(b))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("KernelBackend(torch: liger-kernel not usable")

def test_import_error_other_than_importerror(monkeypatch, gpu_machine):
    "A broken Triton can raise anything while liger imports; that must not escape."
    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "liger_kernel": raise RuntimeError("Triton: driver mismatch")
    monkeypatch.setattr(sys, "meta_path", [Finder()] + sys.meta_path)
    for m in [m for m in sys.modules if m.startswith("liger_kernel")]: monkeypatch.delitem(sys.modules, m)
    b = K.kernel_backend("cuda")
    assert b.name == "torch" and "driver mismatch" in b.reason and not b

def test_cpu_tensors_never_take_liger(monkeypatch, gpu_machine):
    monkeypatch.setattr(K, "_liger", fake_liger(Boom, Boom))
    Boom.calls = 0
    assert K.kernel_backend("cuda").name == "liger"            # liger "installed" and a CUDA device asked for
    assert K.kernel_backend("cpu").name == "torch" and "cpu tensors" in K.kernel_backend("cpu").reason
    g, u = torch.randn(5, 7), torch.randn(5, 7)
    torch.testing.assert_close(K.swiglu(g, u), F.silu(g) * u)
    h, w, t = torch.randn(6, 4), torch.randn(11, 4), torch.randint(0, 11, (6,))
    torch.testing.assert_close(K.fused_linear_cross_entropy(h, w, t), F.cross_entropy(h @ w.T, t))
    MoE(8, 4, 2, 16)(torch.randn(2, 3, 8))
    assert Boom.calls == 0

def test_forced_fallback(monkeypatch, gpu_machine):
    monkeypatch.setattr(K, "_liger", fake_liger(Boom, Boom))
    monkeypatch.setenv("TINYGPT_KERNELS", "torch")
    b = K.kernel_backend("cuda")
    assert b.name == "torch" and "TINYGPT_KERNELS" in b.reason and "TINYGPT_KERNELS" in repr(b)

def test_not_linux(monkeypatch, gpu_machine):
    monkeypatch.setattr(K, "_liger", fake_liger(Boom, Boom)); monkeypatch.setattr(sys, "platform", "darwin")
    assert K.kernel_backend("cuda").name == "torch" and "darwin" in K.kernel_backend("cuda").reason

def test_no_cuda_device(monkeypatch):
    monkeypatch.setattr(K, "_liger", fake_liger(Boom, Boom)); monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert K.kernel_backend().name == "torch" and "no CUDA device" in K.kernel_backend().reason
    assert K.kernel_backend("cuda").name == "torch" and "no CUDA device" in K.kernel_backend("cuda").reason

def test_runtime_failure_warns_and_falls_back(monkeypatch):
    "If a liger kernel raises where it should run, warn once, give the PyTorch result, and stop trying there."
    monkeypatch.setattr(K, "_liger", fake_liger(Boom, Boom))
    monkeypatch.setattr(K, "_liger_ok", lambda device_type: True)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))   # pretend the tensors are on a GPU
    Boom.calls = 0
    g, u = torch.randn(5, 7), torch.randn(5, 7)
    with pytest.warns(UserWarning, match="liger-kernel failed"): out = K.swiglu(g, u)
    torch.testing.assert_close(out, F.silu(g) * u)
    assert "cpu" in K._LIGER_BROKEN and Boom.calls == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error"); K.swiglu(g, u)                              # no second attempt
    assert Boom.calls == 1

def test_liger_calls_use_liger_signatures(monkeypatch):
    "liger's fused SwiGLU is `LigerSiLUMulFunction.apply(a, b)`; its FLCE module is called as (weight, hidden, target)."
    seen = {}
    class SiLUMul:
        @staticmethod
        def apply(a, b): seen["swiglu"] = (a, b); return F.silu(a) * b
    class FLCE:
        def __init__(self, ignore_index=-100): seen["ignore_index"] = ignore_index
        def __call__(self, weight, hidden, target):
            seen["flce"] = (weight.shape, hidden.shape, target.shape)
            return F.cross_entropy(hidden @ weight.T, target, ignore_index=seen["ignore_index"])
    monkeypatch.setattr(K, "_liger", fake_liger(SiLUMul, FLCE))
    monkeypatch.setattr(K, "_use_liger", lambda t: True)
    e = Expert(8, 16)
    assert e.glu is silu_mul                                   # plain PyTorch until switched explicitly
    K.use_fused_swiglu(e)
    assert list(e.state_dict()) == ["gate_proj.weight", "up_proj.weight", "down_proj.weight"]
    x = torch.randn(3, 8)
    torch.testing.assert_close(e(x), e.down_proj(F.silu(e.gate_proj(x)) * e.up_proj(x)))
    assert seen["swiglu"][0].shape == (3, 16)
    h, w, t = torch.randn(2, 5, 4), torch.randn(11, 4), torch.randint(0, 11, (2, 5))
    K.fused_linear_cross_entropy(h, w, t, ignore_index=3)
    assert seen["flce"] == ((11, 4), (10, 4), (10,)) and seen["ignore_index"] == 3

def test_chunked_matches_plain_bf16_and_weight_only_grad():
    torch.manual_seed(0)
    h, w = torch.randn(40, 16), torch.randn(300, 16) * 0.3
    t = torch.randint(0, 300, (40,)); t[3] = -100
    wb = w.bfloat16().requires_grad_()
    loss = K.chunked_linear_cross_entropy(h.bfloat16(), wb, t, chunk_size=7)   # hidden needs no grad here
    loss.backward()
    wf = w.bfloat16().float().requires_grad_()
    ref = F.cross_entropy(h.bfloat16().float() @ wf.T, t); ref.backward()
    assert wb.grad.dtype == torch.bfloat16
    torch.testing.assert_close(loss, ref, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(wb.grad.float(), wf.grad, rtol=2e-2, atol=1e-3)

def test_moe_config_errors():
    for n, k, msg in [(2, 3, "larger than n_experts"), (-1, 1, "between 1"), (0, 1, "between 1"), (4, 0, ">= 1"), (2.5, 1, "integer")]:
        with pytest.raises(ValueError, match=msg): validate_moe_config(n, k)
    with pytest.raises(ValueError, match="router_noise"): validate_moe_config(4, 2, -5)
    with pytest.raises(ValueError, match="n_experts must be between 1"): MoE(8, 0, 1, 16)
    with pytest.raises(ValueError, match="router_noise"): MoE(8, 4, 2, 16, noise=float("nan"))

def test_moe_under_bf16_autocast():
    "Under autocast the experts return bf16 while the layer input is float32: the dispatch must still combine them."
    torch.manual_seed(0)
    moe = MoE(16, 4, 2, 32, aux_coef=0.01, z_coef=0.001)
    x = torch.randn(2, 5, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = moe(x)
        (y.float().square().mean() + moe.aux_loss).backward()
    assert y.shape == x.shape and torch.isfinite(x.grad).all() and moe.router.weight.grad is not None

def test_tiny_moe_model_loss_includes_aux():
    from dataclasses import replace
    from tinygpt.model import GPT
    from tinygpt.moe import PRESETS
    torch.manual_seed(0)
    cfg = replace(PRESETS["tiny-moe"], vocab_size=256, n_layer=2, moe_aux_coef=0.01, moe_z_coef=0.001)
    m = GPT(cfg)
    idx = torch.randint(0, 256, (2, 8))
    logits, loss = m(idx, idx)
    aux = sum(b.mlp.aux_loss for b in m.blocks)
    torch.testing.assert_close(loss, F.cross_entropy(logits.view(-1, 256), idx.view(-1)) + aux)
    assert all(b.mlp.last_routing.shape == (2, 8, 2) for b in m.blocks)

def test_use_fused_swiglu_switches_every_expert_and_back():
    from tinygpt.model import GPT
    from tinygpt.moe import PRESETS
    from dataclasses import replace
    m = GPT(replace(PRESETS["tiny-moe"], vocab_size=64, n_layer=2))
    experts = [x for x in m.modules() if isinstance(x, Expert)]
    assert len(experts) == 8 and all(e.glu is silu_mul for e in experts)
    keys = list(m.state_dict())
    assert K.use_fused_swiglu(m) is m and all(e.glu is K.swiglu for e in experts)
    assert list(m.state_dict()) == keys                                  # no parameter or buffer changes
    K.use_fused_swiglu(m, enabled=False); assert all(e.glu is silu_mul for e in experts)

def patched(m): return [x for x in m.modules() if "forward" in vars(x)]

def small_model(**kw):
    from tinygpt.model import GPT
    from tinygpt.moe import config_from_dict
    torch.manual_seed(0)
    return GPT(config_from_dict(dict(vocab_size=512, block_size=12, n_layer=2, n_head=2, n_embd=32, dropout=0.1, **kw))).eval()

@pytest.mark.parametrize("kw", [{}, {"n_experts": 4, "top_k_experts": 2, "expert_hidden": 32}])
def test_fast_decoding_matches_plain_and_cleans_up(kw):
    from tinygpt.generate import generate
    m, x = small_model(**kw), torch.randint(0, 512, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        plain = m(x)
        with K.fast_decoding(m):
            assert len(patched(m)) == sum(isinstance(l, torch.nn.Linear) for l in m.modules())
            fast = m(x)
            with K.fast_decoding(m): pass                                # nested: the outer patches stay
            assert patched(m)
    assert torch.allclose(fast, plain, atol=1e-5) and not patched(m)
    with K.fast_decoding(m): a = generate(m, x, 15, temperature=0, stop_at_eot=False)
    assert torch.equal(a, generate(m, x, 15, temperature=0, stop_at_eot=False)) and not patched(m)
    with pytest.raises(ZeroDivisionError):
        with K.fast_decoding(m): 1 / 0
    assert not patched(m)                                              # an error inside leaves the model plain

def test_fast_decoding_overlapping_threads():
    import threading
    m, errors, barrier = small_model(), [], threading.Barrier(3)
    def work():
        try:
            barrier.wait()
            for _ in range(20):
                with K.fast_decoding(m): m(torch.randint(0, 512, (1, 3)))
        except Exception as e: errors.append(e)
    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert not errors and not patched(m) and not K._FAST

def test_fast_decoding_switched_off(monkeypatch):
    import types
    m = small_model()
    monkeypatch.setenv("TINYGPT_KERNELS", "torch")
    with K.fast_decoding(m): assert not patched(m)
    monkeypatch.delenv("TINYGPT_KERNELS")
    compiled_like = types.SimpleNamespace(_orig_mod=m, modules=m.modules)   # what torch.compile returns looks like this
    with K.fast_decoding(compiled_like): assert not patched(m)

def test_fast_linear_takes_onednn_only_where_safe(monkeypatch):
    calls = []
    monkeypatch.setattr(K, "onednn_linear", lambda x, w, b=None: calls.append(tuple(x.shape)) or F.linear(x, w, b))
    w = torch.randn(8, 4)
    with torch.no_grad():
        for x in (torch.randn(2, 3, 4), torch.randn(4), torch.randn(33, 4), torch.randn(0, 4)):
            assert torch.allclose(K.fast_linear(x, w), F.linear(x, w))
        K.fast_linear(torch.randn(1, 4).double(), w.double())           # float64: F.linear
    y = K.fast_linear(torch.randn(1, 4), w.clone().requires_grad_())    # autograd on: F.linear, which has a backward
    assert y.requires_grad
    assert calls == ([(2, 3, 4), (4,)] if K.onednn_ok() else [])
    calls.clear(); monkeypatch.setenv("TINYGPT_KERNELS", "torch")
    with torch.no_grad(): K.fast_linear(torch.randn(1, 4), w)
    assert calls == []
    monkeypatch.delenv("TINYGPT_KERNELS"); monkeypatch.setattr(K, "onednn_ok", lambda: False)
    with torch.no_grad(): K.fast_linear(torch.randn(1, 4), w)
    assert calls == []

@pytest.mark.skipif(__import__("platform").machine().lower() not in ("x86_64", "amd64"), reason="oneDNN is part of PyTorch's x86 wheels")
def test_onednn_is_usable_on_x86():
    assert K.onednn_ok()                                               # else fast_decoding silently loses its fast path
