"""SCAFFOLD (hand-written; to be replaced by the export of nbs/03_layers.ipynb)"""
import torch.nn as nn
from tinygpt.attention import CausalSelfAttention

class MLP(nn.Module):
    "Linear(d -> h) -> ReLU -> Linear(h -> d) -> Dropout."
    def __init__(self, n_embd, hidden=None, dropout=0.0):
        super().__init__()
        hidden = hidden or 4 * n_embd
        self.fc, self.act, self.proj, self.drop = nn.Linear(n_embd, hidden), nn.ReLU(), nn.Linear(hidden, n_embd), nn.Dropout(dropout)
    def forward(self, x): return self.drop(self.proj(self.act(self.fc(x))))

class Block(nn.Module):
    "Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)). `mlp` can be any (B,T,C)->(B,T,C) module."
    def __init__(self, n_embd, n_head, dropout=0.0, mlp=None):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(n_embd), CausalSelfAttention(n_embd, n_head, dropout)
        self.ln2, self.mlp = nn.LayerNorm(n_embd), mlp if mlp is not None else MLP(n_embd, dropout=dropout)
    def forward(self, x, cache=None):
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))
