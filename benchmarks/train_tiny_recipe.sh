#!/usr/bin/env bash
# The CPU recipe of nbs/11_cli.ipynb: train the `tiny` preset on the course's TinyStories split and export it as the
# bundled default model (tinygpt/assets/default/, fp16 weights, model card with the held-out loss), then sample.
#
#   bash benchmarks/train_tiny_recipe.sh                 # the recipe: 500 steps x 16 x 128 tokens (527 s of training, 9 min 13 s in all, on a quiet 2-core CPU)
#   bash benchmarks/train_tiny_recipe.sh --quick         # smoke run: 4 steps into a temp folder, bundled model untouched
#
# Env: PYTHON (default python: the venv with tinygpt installed), DATA (default ../shared/data/tinystories from the repo root), RUN (run folder, default runs/tiny-recipe),
#      DEST (export folder, default tinygpt/assets/default). The wall time of the training is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA=${DATA:-../shared/data/tinystories}
RUN=${RUN:-runs/tiny-recipe}
DEST=${DEST:-tinygpt/assets/default}
EXTRA=()
if [[ "${1:-}" == "--quick" ]]; then
  tmp=$(mktemp -d); RUN=$tmp/run; DEST=$tmp/model
  EXTRA=(--max-steps 4 --batch-size 2 --eval-every 2 --eval-batches 1)
fi
export TIKTOKEN_CACHE_DIR=${TIKTOKEN_CACHE_DIR:-$PWD/tinygpt/assets/tiktoken}
[[ -d "$RUN" && -z "${EXTRA[*]}" ]] && { echo "run folder $RUN exists: remove it or set RUN=..." >&2; exit 1; }

start=$(date +%s)
# The recipe is the defaults of `--preset tiny` (tinygpt.cli.RECIPES): --max-steps 500 --batch-size 16 --lr 3e-3,
# 5% warmup then cosine to lr/10, AdamW (0.9, 0.95, wd 0.1), clip 1.0, --dtype auto (fp32 on CPUs without native bf16), seed 1337.
"$PYTHON" -m tinygpt.cli train --preset tiny --data "$DATA" --out "$RUN" "${EXTRA[@]}"
secs=$(( $(date +%s) - start ))
card=$("$PYTHON" - "$RUN" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
cfg = json.loads((run / "config.json").read_text())
steps = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"]
t, T = cfg["train"], cfg["train"]["block_size"] or cfg["model"]["block_size"]
rows = t["batch_size"] * t["grad_accum"]
data = json.loads((run / "data" / "train.json").read_text())["n_tokens"]
print(json.dumps({
  "title": "tinygpt default model (tiny preset, CPU recipe)",
  "data": "TinyStories (Eldan & Li 2023, roneneldan/TinyStories, CDLA-Sharing-1.0): the course split, "
          "train-head.txt + the first 600,000 characters of valid-head.txt (~196K GPT-2 tokens, every story closed by the end-of-text token 50256)",
  "steps": steps,
  "tokens_seen": f"{steps * rows * T:,} (batch {rows} x {T} tokens, ~{steps * rows * T / data:.1f} passes over the data)",
  "held_out_text": "valid-head.txt from character 600,000 to the end (~46K tokens, never trained on); loss over all non-overlapping 128-token windows",
  "weights": "fp16 in model.safetensors (cast to fp32 on loading); license Apache-2.0",
  "data_attribution": "TinyStories by Ronen Eldan and Yuanzhi Li, CDLA-Sharing-1.0",
  "recipe": "bash benchmarks/train_tiny_recipe.sh, i.e. tinygpt train --preset tiny --data ../shared/data/tinystories --out runs/tiny-recipe "
            "&& tinygpt export runs/tiny-recipe tinygpt/assets/default --dtype fp16 --eval-data ../shared/data/tinystories",
}))
PY
)
"$PYTHON" -m tinygpt.cli export "$RUN" "$DEST" --dtype fp16 --eval-data "$DATA" --card "$card"
echo "training wall time: ${secs}s"
for p in "Once upon a time" "Tom and his dog" "The little bird was sad because"; do
  "$PYTHON" -m tinygpt.cli generate --checkpoint "$DEST" --prompt "$p" --max-new-tokens 60 --seed 0
done
