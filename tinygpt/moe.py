"""SCAFFOLD (hand-written; to be replaced by the export of nbs/06_moe.ipynb)"""
import torch, torch.nn as nn, torch.nn.functional as F

class Expert(nn.Module):
    def __init__(self, n_embd, hidden):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = nn.Linear(n_embd, hidden, bias=False), nn.Linear(n_embd, hidden, bias=False), nn.Linear(hidden, n_embd, bias=False)
    def forward(self, x): return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

class MoE(nn.Module):
    def __init__(self, n_embd, n_experts, top_k, hidden, aux_coef=0.0, z_coef=0.0, noise=0.0):
        super().__init__()
        self.top_k, self.aux_coef, self.z_coef, self.noise = top_k, aux_coef, z_coef, noise
        self.router = nn.Linear(n_embd, n_experts, bias=False)
        self.experts = nn.ModuleList(Expert(n_embd, hidden) for _ in range(n_experts))
        self.aux_loss, self.expert_counts = torch.tensor(0.0), torch.zeros(n_experts, dtype=torch.long)
    def forward(self, x):
        B, T, C = x.shape
        xf = x.view(-1, C)                                                  # (N, C)
        logits = self.router(xf)                                            # (N, E)
        top_logits, top_idx = logits.topk(self.top_k, dim=-1)              # (N, k)
        weights = F.softmax(top_logits, dim=-1)                             # (N, k)
        out = torch.zeros_like(xf)
        for e, expert in enumerate(self.experts):
            tok, slot = (top_idx == e).nonzero(as_tuple=True)
            if tok.numel(): out.index_add_(0, tok, expert(xf[tok]) * weights[tok, slot, None])
        self.expert_counts = torch.bincount(top_idx.flatten(), minlength=len(self.experts)).detach()
        return out.view(B, T, C)
