"""The search behind the CPU recipe (lesson 11, "What was tried"): train a shortlist model for a fixed wall time.

A plain loop, so that one configuration is one command and nothing else runs meanwhile, built from the course's own
pieces: the course split tokenised as `tinygpt train --data sample` does (lesson 01: one end-of-text token per story),
lesson 04's `GPT` with a shortlist of every id the training text uses (`vocab_kept`, `keep_tokens`), lesson 08's
`LMLoss` and `held_out_loss` (the one held-out loss: all non-overlapping windows, over all GPT-2 ids). AdamW (0.9,
0.95), clip 1.0, a warmup of 3% of the time and a cosine decay to lr/10 *over the wall time*, so every run ends
annealed however fast the machine. Every `secs / 8` seconds and at the end it prints (seconds, tokens seen, held-out
loss, running training loss).

    python benchmarks/recipe_search.py 128 4 4 128 0.2 16 3e-3 300 bf16 0.1
    #                                  width layers heads context dropout batch lr seconds fp32|bf16 weight-decay
"""
import sys, time, math, json, tempfile, numpy as np, torch
from tinygpt.data import TRAIN_PATH, EVAL_PATH, load_stories, prepare_tokens, get_batch
from tinygpt.model import GPT, GPTConfig, shortlist_ids
from tinygpt.training import LMLoss, held_out_loss, autocast

torch.manual_seed(1337)
C, L, H, T, drop, bs, lr, secs, dt = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                                      int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8]), sys.argv[9])
wd = float(sys.argv[10]) if len(sys.argv) > 10 else 0.1
tmp = tempfile.mkdtemp(prefix="recipe-search-")
train_tokens = prepare_tokens(load_stories(TRAIN_PATH), f"{tmp}/train.bin").tokens
eval_tokens = prepare_tokens(load_stories(EVAL_PATH, "validation"), f"{tmp}/eval.bin").tokens
n_kept = len(np.unique(train_tokens))                                      # every id the training text uses
model = GPT(GPTConfig(block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=drop, vocab_kept=n_kept))
model.keep_tokens(shortlist_ids(train_tokens, n_kept, model.config.vocab_size))
loss_fn, gen = LMLoss(model), torch.Generator().manual_seed(1337)
opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=wd)
dtype = torch.bfloat16 if dt == "bf16" else torch.float32

def evaluate():
    with autocast(torch.device("cpu"), dtype): loss = held_out_loss(model, eval_tokens, T, 32)
    model.train(); return loss

t0 = last = time.time(); seen, hist, rl, step = 0, [], 0.0, 0
model.train()
while (el := time.time() - t0) <= secs:
    for g in opt.param_groups: g["lr"] = lr * min(1, el / (0.03 * secs)) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * el / secs)))
    x, y = get_batch(train_tokens, bs, T, generator=gen)
    with autocast(torch.device("cpu"), dtype): loss = loss_fn(x, y)
    opt.zero_grad(set_to_none=True); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    step += 1; seen += bs * T; rl = 0.98 * rl + 0.02 * loss.item() if step > 1 else loss.item()
    if time.time() - last > secs / 8:
        hist.append((round(time.time() - t0), seen, round(evaluate(), 4), round(rl, 3))); print(hist[-1], flush=True); last = time.time()
hist.append((round(time.time() - t0), seen, round(evaluate(), 4)))
print(json.dumps(dict(cfg=sys.argv[1:], params=model.n_params(), kept=n_kept, tok_s=round(seen / (time.time() - t0)),
                      final=hist[-1][2], hist=hist)), flush=True)
