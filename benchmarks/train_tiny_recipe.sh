#!/usr/bin/env bash
# The CPU recipe (nbs/11_evaluate.ipynb, "The CPU recipe"): train the `tiny-shortlist` preset on the course's TinyStories split,
# export it as the bundled default model (tinygpt/assets/default/: fp16 weights + model card), evaluate it with
# tinygpt.evaluate (the one held-out loss over all windows of the held-out text, and the sample metrics), and write
# those figures into the card.
#
#   bash benchmarks/train_tiny_recipe.sh            # the recipe (under 10 minutes of training on a quiet 2-core CPU)
#   bash benchmarks/train_tiny_recipe.sh --quick    # smoke run: 4 steps into a temp folder, bundled model untouched
#   bash benchmarks/train_tiny_recipe.sh --card-only  # no training: re-evaluate DEST and rewrite its card (TRAIN_SECS: the recorded training time)
#
# Env: PYTHON (default python: the venv with tinygpt), DATA (default sample: the course split bundled with the package),
#      RUN (run folder, default runs/tiny-recipe), DEST (export folder, default tinygpt/assets/default),
#      STEPS, BATCH, LR, DTYPE (the recipe's settings, below). The training wall time is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA=${DATA:-sample}
RUN=${RUN:-runs/tiny-recipe}
DEST=${DEST:-tinygpt/assets/default}
# The recipe: the tiny-shortlist preset (tiny: width 128, 4 layers, 4 heads, context 128; dropout 0.2; a shortlist of the
# 5,119 ids the training text uses most, all others sharing one row, lesson 04), STEPS x 16 rows x 128 tokens, peak lr
# 3e-3 (5% warmup, cosine to lr/10), AdamW (0.9, 0.95, weight decay 0.1), clip 1.0, dtype auto (bf16 where the CPU
# has it natively, else fp32), seed 1337. These are `tinygpt train --preset tiny-shortlist`'s defaults (cli.RECIPES).
STEPS=${STEPS:-2400}; BATCH=${BATCH:-16}; LR=${LR:-3e-3}; DTYPE=${DTYPE:-auto}
EXTRA=(--eval-every 400 --eval-batches 4 --ckpt-every 400)
N_SAMPLES=16
if [[ "${1:-}" == "--quick" ]]; then
  tmp=$(mktemp -d); RUN=$tmp/run; DEST=$tmp/model; STEPS=4; BATCH=2; N_SAMPLES=2
  EXTRA=(--eval-every 2 --eval-batches 1)
fi
export TIKTOKEN_CACHE_DIR=${TIKTOKEN_CACHE_DIR:-$PWD/tinygpt/assets/tiktoken}
if [[ "${1:-}" == "--card-only" ]]; then
  RUN=$(mktemp -d); secs=${TRAIN_SECS:-}
else
  [[ -d "$RUN" && "${1:-}" != "--quick" ]] && { echo "run folder $RUN exists: remove it or set RUN=..." >&2; exit 1; }
  start=$(date +%s)
  "$PYTHON" -m tinygpt.cli train --preset tiny-shortlist --data "$DATA" --out "$RUN" --max-steps "$STEPS" --batch-size "$BATCH" \
    --lr "$LR" --dtype "$DTYPE" --seed 1337 --quiet "${EXTRA[@]}"
  secs="$(( $(date +%s) - start ))"
  "$PYTHON" -m tinygpt.cli export "$RUN" "$DEST" --dtype fp16
fi
# Evaluate the exported (fp16) weights, i.e. exactly what ships, and write the card from the same figures.
"$PYTHON" - "$RUN" "$DEST" "$DATA" "$N_SAMPLES" "$secs" "$STEPS" "$BATCH" "$LR" "$DTYPE" <<'PY'
import json, sys
from pathlib import Path
from tinygpt.evaluate import eval_command
from tinygpt.hub import write_model_card
run, dest, data, n_samples, secs, steps, batch, lr, dtype = sys.argv[1:]
steps, batch, n_samples = int(steps), int(batch), int(n_samples)
eval_command(checkpoint=dest, data=None if data == "sample" else data, out=str(Path(run) / "eval.json"), n_samples=n_samples, seed=0, max_new_tokens=128)
ev = json.loads((Path(run) / "eval.json").read_text())
h, s = ev["held_out"], ev["samples"]
T = json.loads((Path(dest) / "config.json").read_text())["block_size"]
pct = lambda v: "-" if v is None else f"{v:.1%}"
facts = {
  "title": "tinygpt default model (tiny-shortlist preset, CPU recipe)",
  "data": "TinyStories (Eldan & Li 2023, roneneldan/TinyStories, CDLA-Sharing-1.0): the course split, train-head.txt + "
          "the first 600,000 characters of valid-head.txt (~196K GPT-2 tokens, every story closed by the end-of-text token 50256)",
  "steps": steps,
  "held_out_loss": f"{h['loss']:.4f} (perplexity {h['perplexity']:.2f}, {h['bits_per_byte']:.3f} bits per byte; "
                   f"tinygpt.evaluate over all {h['windows']} non-overlapping {T}-token windows = {h['tokens']:,} tokens)",
  "tokens_seen": f"{steps * batch * T:,} (batch {batch} x {T} tokens, peak lr {lr}, {dtype})",
  "held_out_text": "valid-head.txt from character 600,000 to the end (~46K tokens, never trained on)",
  "sample_metrics": f"{s['n_samples']} samples of 8 fixed prompts (tinygpt.evaluate.PROMPTS), temperature 0.8, top-k 50, up to 128 new "
                    f"tokens, seeds 0..{s['n_samples'] - 1}: distinct-1/2/3 {s['distinct_1']:.3f} / {s['distinct_2']:.3f} / "
                    f"{s['distinct_3']:.3f}; repeated 4-grams {pct(s['repetition_4'])}; 8-grams copied from the training text "
                    f"{pct(s['copied_8'])}; ending with <|endoftext|> {pct(s['ended_share'])}; mean length {s['mean_length']:.1f} tokens",
  "sample": ev["texts"][0].replace("\n", " ")[:400],
  "weights": "fp16 in model.safetensors (cast to fp32 on loading); license Apache-2.0",
  "data_attribution": "TinyStories by Ronen Eldan and Yuanzhi Li, CDLA-Sharing-1.0",
  "recipe": f"bash benchmarks/train_tiny_recipe.sh, i.e. tinygpt train --preset tiny-shortlist --data sample --out runs/tiny-recipe "
            f"--max-steps {steps} --batch-size {batch} --lr {lr} --dtype {dtype} --seed 1337, then tinygpt export runs/tiny-recipe "
            f"tinygpt/assets/default --dtype fp16 and tinygpt.evaluate.eval_command on the export",
  "training_time": f"{secs} s (wall clock of tinygpt train on the machine that ran it)" if secs.isdigit() else (secs or "not recorded"),
}
write_model_card(dest, **facts)
size = sum(f.stat().st_size for f in Path(dest).iterdir()) / 1e6
print(f"card written; {dest} holds {size:.1f} MB")
assert size < 20, "the bundled model must stay under 20 MB"
PY
echo "training wall time: ${secs:-not recorded}"
for p in "Once upon a time" "Tom and his dog" "The little bird was sad because"; do
  "$PYTHON" -m tinygpt.cli generate --checkpoint "$DEST" --prompt "$p" --max-new-tokens 60 --seed 0
done
