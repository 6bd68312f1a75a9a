"""SCAFFOLD (hand-written; to be replaced by the export of nbs/02_attention.ipynb)"""
import math, torch, torch.nn as nn, torch.nn.functional as F

class LayerKV:
    "Keys and values of one attention layer, preallocated to `max_len` positions."
    def __init__(self, max_len): self.max_len, self.length, self.k, self.v = max_len, 0, None, None
    def update(self, k, v):
        "Append `k`, `v` (B, nh, T, hd); return all keys and values so far (B, nh, L+T, hd)."
        B, nh, T, hd = k.shape
        if self.k is None:
            self.k = k.new_zeros(B, nh, self.max_len, hd); self.v = v.new_zeros(B, nh, self.max_len, hd)
        if self.length + T > self.max_len: raise ValueError(f"KV cache full: {self.length}+{T} > {self.max_len} positions")
        self.k[:, :, self.length:self.length+T] = k; self.v[:, :, self.length:self.length+T] = v
        self.length += T
        return self.k[:, :, :self.length], self.v[:, :, :self.length]

class KVCache:
    "One `LayerKV` per layer; `length` is how many positions are stored."
    def __init__(self, n_layer, max_len): self.layers = [LayerKV(max_len) for _ in range(n_layer)]
    @property
    def length(self): return self.layers[0].length
    def __getitem__(self, i): return self.layers[i]
    def __len__(self): return len(self.layers)

class CausalSelfAttention(nn.Module):
    "Multi-head causal self-attention with a fused qkv projection (q, k, v stacked in that order)."
    def __init__(self, n_embd, n_head, dropout=0.0):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
    def forward(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)                              # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hd)
        past = 0
        if cache is not None: past = cache.length; k, v = cache.update(k, v)  # (B, nh, past+T, hd)
        p = self.dropout if self.training else 0.0
        if past == 0: y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1: y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)                    # (B, T, C)
        return self.proj(y)
