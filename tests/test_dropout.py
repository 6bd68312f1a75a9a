"""Dropout that stays cheap on a CPU (lessons 02 and 03), the chunked loss under autocast (lesson 07), and the freed
memory a CPU Trainer keeps for reuse (lesson 08): each checked against the plain PyTorch computation it replaces."""
import math, sys
import numpy as np, pytest, torch
import torch.nn as nn, torch.nn.functional as F
import tinygpt.attention as attention
from tinygpt.attention import CausalSelfAttention, keep_mask, dropped_share, attention_dropout
from tinygpt.layers import Dropout, MLP
from tinygpt.kernels import chunked_linear_cross_entropy
from tinygpt.model import GPT, GPTConfig
from tinygpt.training import Trainer, keep_freed_memory

@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_keep_mask_share_in_every_16_bit_piece(p):
    torch.manual_seed(0)
    keep = keep_mask((400_000,), p).view(-1, 4).float()
    assert abs(dropped_share(p) - p) <= 1 / 131072
    assert torch.allclose(keep.mean(0), torch.full((4,), 1 - p), atol=4e-3), keep.mean(0)   # no piece is biased
    assert keep_mask((7, 3), 0.0).all()

def test_blocked_attention_matches_plain_with_the_same_masks():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 45, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    torch.manual_seed(5)
    y = attention_dropout(q, k, v, 0.4, block=16)
    torch.manual_seed(5)                                          # the same draws, block by block
    keep = torch.zeros(2, 2, 45, 45, dtype=torch.bool)
    for s in range(0, 45, 16):
        e = min(s + 16, 45); keep[:, :, s:e, :e] = keep_mask((2, 2, e - s, e), 0.4)
    att = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(torch.ones(45, 45, dtype=torch.bool).triu(1), float("-inf"))
    ref = (att.softmax(-1) * keep / (1 - dropped_share(0.4))) @ v
    assert torch.allclose(y, ref, atol=1e-12)
    dy = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, (q, k, v), dy), torch.autograd.grad(ref, (q, k, v), dy)):
        assert torch.allclose(a, b, atol=1e-12)

def test_module_uses_the_blocked_path_only_while_training(monkeypatch):
    calls = []
    real = attention.attention_dropout
    monkeypatch.setattr(attention, "attention_dropout", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    torch.manual_seed(0)
    attn, x = CausalSelfAttention(16, 4, dropout=0.3), torch.randn(2, 9, 16)
    with torch.no_grad(): full = attn.eval()(x)
    attn.train()(x).sum().backward()
    assert calls == [1] and all(p.grad is not None and p.grad.isfinite().all() for p in attn.parameters())
    with torch.no_grad(): assert torch.equal(attn.eval()(x), full) and calls == [1]
    with torch.autocast("cpu", torch.bfloat16):                       # bf16 inside, like SDPA; float32 leaves get grads
        y = attn.train()(x)
    assert y.dtype == torch.bfloat16 and calls == [1, 1]
    y.float().sum().backward()
    assert attn.qkv.weight.grad.dtype == torch.float32

def test_dropout_module_is_nn_dropout_with_cheaper_masks():
    d = Dropout(0.25)
    assert isinstance(d, nn.Dropout) and d.state_dict() == {} and repr(d) == repr(nn.Dropout(0.25))
    x = torch.ones(500, 1000)
    assert torch.equal(d.eval()(x), x)
    y = d.train()(x)
    assert abs((y == 0).float().mean().item() - 0.25) < 3e-3 and abs(y.mean().item() - 1) < 5e-3
    assert torch.allclose(y.unique(), torch.tensor([0.0, 1 / (1 - dropped_share(0.25))]))   # dropped, or scaled up
    assert isinstance(MLP(8, dropout=0.1).drop, Dropout)

def test_chunked_loss_under_autocast_matches_the_plain_bf16_loss():
    torch.manual_seed(0)
    h, w = torch.randn(300, 64, requires_grad=True), (torch.randn(1000, 64) * 0.1).requires_grad_()
    t = torch.randint(0, 1000, (300,)); t[::7] = -100
    def run(fn):
        with torch.autocast("cpu", torch.bfloat16): loss = fn()
        return (loss.float(), *torch.autograd.grad(loss, (h, w)))
    got = run(lambda: chunked_linear_cross_entropy(h, w, t, chunk_size=64))
    ref = run(lambda: F.cross_entropy(h @ w.T, t))
    assert got[1].dtype == got[2].dtype == torch.float32             # gradients in the leaves' dtype
    assert abs(got[0] - ref[0]) < 1e-4
    for a, b in zip(got[1:], ref[1:]): assert (a - b).norm() / b.norm() < 1e-2

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_trainer_keeps_freed_memory_while_it_trains_and_gives_it_back(tmp_path):
    if not keep_freed_memory(False): pytest.skip("not glibc")
    tokens = np.random.default_rng(0).integers(0, 512, 5000)
    cfg = GPTConfig(vocab_size=512, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
    for keep in (True, False):
        seen = []
        tr = Trainer(GPT(cfg), tokens, None, tmp_path / f"run-{keep}", max_steps=3, batch_size=2, progress=False,
                     device="cpu", keep_memory=keep)
        tr.callbacks.append(lambda m: seen.append(tr._kept_memory))
        tr.fit()
        assert seen == [keep] * 3 and tr._kept_memory is False
