"""SCAFFOLD (hand-written; to be replaced by the export of nbs/04_model.ipynb)"""
from dataclasses import dataclass, asdict
import torch, torch.nn as nn, torch.nn.functional as F
from tinygpt.layers import Block, MLP
from tinygpt.attention import KVCache

@dataclass
class GPTConfig:
    vocab_size: int = 50304
    block_size: int = 512
    n_layer: int = 8
    n_head: int = 8
    n_embd: int = 512
    dropout: float = 0.3
    n_experts: int = 0          # 0: dense MLP blocks; >0: Mixture-of-Experts blocks
    top_k_experts: int = 2
    expert_hidden: int = 1024
    moe_aux_coef: float = 0.0   # Switch-style load-balancing loss weight
    moe_z_coef: float = 0.0     # router z-loss weight
    router_noise: float = 0.0   # noisy top-k std, only while training
    def to_dict(self): return asdict(self)

PRESETS = {
    "tinygpt": GPTConfig(),
    "tinygpt-moe": GPTConfig(n_experts=4, top_k_experts=2, expert_hidden=1024),
    "tiny": GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.1),
    "tiny-moe": GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.1, n_experts=4, top_k_experts=2, expert_hidden=256),
}

def make_mlp(cfg):
    "The feed-forward part of a block: dense MLP, or MoE (lesson 06) when `cfg.n_experts > 0`."
    if cfg.n_experts:
        from tinygpt.moe import MoE
        return MoE(cfg.n_embd, cfg.n_experts, cfg.top_k_experts, cfg.expert_hidden, aux_coef=cfg.moe_aux_coef, z_coef=cfg.moe_z_coef, noise=cfg.router_noise)
    return MLP(cfg.n_embd, 4 * cfg.n_embd, cfg.dropout)

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = c = config
        self.tok_emb, self.pos_emb = nn.Embedding(c.vocab_size, c.n_embd), nn.Embedding(c.block_size, c.n_embd)
        self.blocks = nn.ModuleList(Block(c.n_embd, c.n_head, c.dropout, make_mlp(c)) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
    def _init_weights(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)): nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None: nn.init.zeros_(m.bias)
    def n_params(self): return sum(p.numel() for p in self.parameters())
    def new_cache(self): return KVCache(self.config.n_layer, self.config.block_size)
    def hidden_states(self, idx, kv_cache=None):
        "Final hidden states after `ln_f`: (B, T, C)."
        B, T = idx.shape
        past = kv_cache.length if kv_cache is not None else 0
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)                          # (B, T, C)
        for i, block in enumerate(self.blocks): x = block(x, None if kv_cache is None else kv_cache[i])
        return self.ln_f(x)
    def aux_loss(self):
        "Sum of the MoE auxiliary losses of the last forward (0 for dense models)."
        return sum((getattr(b.mlp, 'aux_loss', 0.0) for b in self.blocks), 0.0)
    def forward(self, idx, targets=None, *, kv_cache=None):
        logits = self.lm_head(self.hidden_states(idx, kv_cache))             # (B, T, V)
        if targets is None: return logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-100)
        return logits, loss + self.aux_loss()
