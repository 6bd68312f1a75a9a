"""A shortlist vocabulary (lesson 04's `vocab_kept`): an honest distribution over all ids, the same loss by the cheap
route, training fills the shortlist from the text, and saving, loading, exporting, decoding and serving keep it."""
import dataclasses, math
import numpy as np, pytest, torch
import torch.nn.functional as F
from tinygpt.model import GPT, GPTConfig, PRESETS, shortlist_ids
from tinygpt.moe import config_from_dict
from tinygpt.training import LMLoss, train, read_checkpoint, held_out_loss
from tinygpt.generate import generate
from tinygpt.hub import save_pretrained, load_checkpoint

SMALL = GPTConfig(vocab_size=512, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0, vocab_kept=40)

def text_ids(n=4000, seed=0):
    "Ids drawn from 60 distinct values, a few of them rare: more distinct ids than the shortlist holds."
    g = np.random.default_rng(seed)
    return g.choice(60, size=n, p=np.r_[np.full(50, 0.019), np.full(10, 0.005)]).astype(np.int64) * 7 % 500

def test_config_and_validation():
    assert GPTConfig().to_dict()["vocab_kept"] == 0                       # no shortlist
    assert config_from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ValueError, match="vocab_kept must be between 0 and 511"): dataclasses.replace(SMALL, vocab_kept=512)
    with pytest.raises(ValueError, match="vocab_kept must be an integer"): dataclasses.replace(SMALL, vocab_kept=4.0)
    with torch.device("meta"): assert GPT(PRESETS["tiny-shortlist"]).n_params() < GPT(PRESETS["tiny"]).n_params() / 4

def test_shortlist_ids_and_keep_tokens():
    ids = text_ids()
    kept = shortlist_ids(ids, 40, 512)
    counts = np.bincount(ids, minlength=512)
    assert len(set(kept)) == 40 and list(kept) == sorted(kept) and counts[kept].min() >= np.sort(counts)[-40]
    assert list(shortlist_ids([5, 5, 9], 4, 16)) == [0, 1, 5, 9]             # topped up with the lowest unused ids
    m = GPT(SMALL).keep_tokens(kept)
    assert m.tok_emb.row_of[kept].tolist() == list(range(40)) and (m.tok_emb.row_of == 40).sum() == 512 - 40
    for bad in (kept[:39], np.r_[kept[:39], kept[0]], np.r_[kept[:39], 600]):
        with pytest.raises(ValueError, match="keep_tokens needs 40 distinct ids"): m.keep_tokens(bad)
    with pytest.raises(ValueError, match="no shortlist"): GPT(dataclasses.replace(SMALL, vocab_kept=0)).keep_tokens(kept)

def test_full_distribution_and_cheap_loss_agree():
    torch.manual_seed(0)
    ids = text_ids()
    m = GPT(SMALL).keep_tokens(shortlist_ids(ids, 40, 512)).eval()
    x = torch.as_tensor(ids[:64]).view(2, 32); y = torch.as_tensor(ids[1:65]).view(2, 32).clone()
    y[0, 0], y[1, 3] = 499, -100                                           # an id off the list, an ignored target
    logits, loss = m(x, y)
    assert logits.shape == (2, 32, 512)
    torch.testing.assert_close(logits.softmax(-1).sum(-1), torch.ones(2, 32))
    others = (m.tok_emb.row_of == 40)
    torch.testing.assert_close(logits[..., others].logsumexp(-1), logits[..., others][..., 0] + math.log(512 - 40))
    torch.testing.assert_close(LMLoss(m)(x, y), loss)
    torch.testing.assert_close(LMLoss(m, fused_ce=False)(x, y), loss)

def test_training_fills_the_shortlist_and_everything_keeps_it(tmp_path):
    ids = text_ids(20000)
    train(SMALL, ids, ids[:3000], tmp_path / "run", max_steps=30, batch_size=8, lr=3e-3, progress=False, eval_every=15)
    ck = read_checkpoint(tmp_path / "run")
    kept = ck["model"]["lm_head.kept"]
    assert sorted(kept.tolist()) == sorted(shortlist_ids(ids, 40, 512).tolist())
    model = load_checkpoint(tmp_path / "run")
    torch.manual_seed(0); fresh = GPT(SMALL).keep_tokens(kept)
    assert held_out_loss(model, ids[:3000]) < held_out_loss(fresh, ids[:3000]) - 0.2   # it learned (the floor of this text is ~4.7)
    out = tmp_path / "exported"
    save_pretrained(model.half().float(), out)
    back = load_checkpoint(out)
    assert torch.equal(back.lm_head.kept, model.lm_head.kept) and torch.equal(back.tok_emb.row_of, model.tok_emb.row_of)
    prompt = torch.as_tensor(ids[:8])
    a = generate(model, prompt, 12, temperature=0.8, generator=torch.Generator().manual_seed(1), stop_at_eot=False)
    b = generate(back, prompt, 12, temperature=0.8, generator=torch.Generator().manual_seed(1), stop_at_eot=False)
    assert torch.equal(a, b) and set(a[8:].tolist()) <= set(model.lm_head.kept.tolist()) | set(range(512))

def test_serving_a_shortlist_model_matches_one_forward_per_request():
    pytest.importorskip("fastapi")
    from tinygpt.generate import next_logits
    from tinygpt.serve import SlotKV, prefill, ragged_next_logits
    torch.manual_seed(0)
    m = GPT(SMALL).keep_tokens(shortlist_ids(text_ids(), 40, 512)).eval()
    kv, caches, last = SlotKV(m), [], []
    with torch.inference_mode():
        for n in (3, 9):
            ids = torch.as_tensor(text_ids(n + 1, seed=n))[None]
            c = m.new_cache(); next_logits(m, ids[:, :-1], c); caches.append(c); last.append(int(ids[0, -1]))
            prefill(m, kv, [kv.take()], ids[:, :-1])
        fast = ragged_next_logits(m, last, kv, [0, 1])
        slow = torch.cat([next_logits(m, torch.tensor([[t]]), c) for t, c in zip(last, caches)])
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
