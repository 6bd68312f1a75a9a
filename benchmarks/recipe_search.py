"""The search behind the CPU recipe (lesson 11, "What was tried"): train a shortlist model for a fixed wall time.

A plain PyTorch loop, so that one configuration is one command and nothing else runs meanwhile: the `GPT` of lesson 04
with a vocabulary of the ids the training text uses (one row each, plus one catch-all row for every other id), AdamW
(0.9, 0.95), clip 1.0, a warmup of 3% of the time and a cosine decay to lr/10 *over the wall time* (so every run
ends annealed, however fast the machine). Every `secs / 8` seconds and at the end it prints (seconds, tokens seen,
held-out loss, running training loss). The held-out loss is the mean cross-entropy over all non-overlapping windows
of the held-out text, over all 50,257 GPT-2 ids: a held-out id outside the shortlist costs the catch-all row's
log-probability plus ln(number of such ids), its even share.

    python benchmarks/recipe_search.py 128 4 4 128 0.2 16 3e-3 300 bf16 0.1
    #                                  width layers heads context dropout batch lr seconds fp32|bf16 weight-decay
"""
import sys, time, math, json, torch, torch.nn.functional as F
from tinygpt.tokenizer import get_tokenizer
from tinygpt.data import TRAIN_PATH, EVAL_PATH
from tinygpt.model import GPT, GPTConfig

torch.manual_seed(1337)
C, L, H, T, drop, bs, lr, secs, dt = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                                      int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8]), sys.argv[9])
wd = float(sys.argv[10]) if len(sys.argv) > 10 else 0.1
tok = get_tokenizer()
def enc(p): return [t for s in open(p).read().split("\n\n") if s.strip() for t in tok.encode(s.strip()) + [50256]]
tr, ev = enc(TRAIN_PATH), enc(EVAL_PATH)
keep = sorted(set(tr)); UNK = len(keep); V = (UNK + 1 + 63) // 64 * 64       # rows: the kept ids, the catch-all, padding
m = torch.full((50304,), UNK, dtype=torch.long); m[torch.tensor(keep)] = torch.arange(len(keep))
n_oov = 50257 - len(keep)
trt, evt = m[torch.tensor(tr)], m[torch.tensor(ev)]
model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=drop))
opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=wd)

def evaluate():
    model.eval(); n = (len(evt) - 1) // T; tot = 0.0
    with torch.no_grad():
        for i in range(0, n, 32):
            k = min(32, n - i)
            x = torch.stack([evt[j*T:(j+1)*T] for j in range(i, i+k)]); y = torch.stack([evt[j*T+1:(j+1)*T+1] for j in range(i, i+k)])
            lg = model(x).float()
            tot += float(F.cross_entropy(lg.view(-1, V), y.view(-1), reduction="sum") + (y == UNK).sum() * math.log(n_oov))
    model.train(); return tot / (n * T)

t0 = last = time.time(); seen, hist, rl, step = 0, [], 0.0, 0
ctx = torch.autocast("cpu", torch.bfloat16) if dt == "bf16" else torch.autocast("cpu", enabled=False)
while (el := time.time() - t0) <= secs:
    frac = el / secs
    for g in opt.param_groups: g["lr"] = lr * min(1, el / (0.03 * secs)) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
    ix = torch.randint(len(trt) - T - 1, (bs,))
    x = torch.stack([trt[i:i+T] for i in ix]); y = torch.stack([trt[i+1:i+T+1] for i in ix])
    with ctx: _, loss = model(x, y)
    opt.zero_grad(set_to_none=True); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    step += 1; seen += bs * T; rl = 0.98 * rl + 0.02 * loss.item() if step > 1 else loss.item()
    if time.time() - last > secs / 8:
        hist.append((round(time.time() - t0), seen, round(evaluate(), 4), round(rl, 3))); print(hist[-1], flush=True); last = time.time()
hist.append((round(time.time() - t0), seen, round(evaluate(), 4)))
print(json.dumps(dict(cfg=sys.argv[1:], params=model.n_params(), tok_s=round(seen / (time.time() - t0)), final=hist[-1][2], hist=hist)), flush=True)
