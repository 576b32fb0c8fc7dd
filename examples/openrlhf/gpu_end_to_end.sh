#!/usr/bin/env bash
# End-to-end check of ttrl's OpenRLHF adapter on a GPU machine: a short TTRL run whose log must show
# ttrl's reward-quality metrics and OpenRLHF's evaluation.
#
#   examples/openrlhf/gpu_end_to_end.sh [--dry-run]
#
# Needs: 1 to 8 NVIDIA GPUs on one node, `pip install 'openrlhf[vllm]==0.11.2' 'ttrl[openrlhf]'`, and the model already on
# local disk (nothing is downloaded: HF_HUB_OFFLINE=1). Environment:
#   MODEL      local directory or cached id   (default Qwen/Qwen2.5-Math-1.5B)
#   DATA       prompt file {"prompt","answer"} (default ../shared/data/ttrl/MATH-L1-TTT.json beside the repo)
#   ESTIMATOR  majority_vote | entropy | self_certainty | dare   (default majority_vote)
#   GPUS       GPUs on this node: 1 to 8      (default 1; batch sizes scale with it)
#   OUT        output folder                  (default /tmp/ttrl-openrlhf-e2e)
# With --dry-run it only prints the resolved OpenRLHF command (no GPU needed).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODEL="${MODEL:-Qwen/Qwen2.5-Math-1.5B}"
DATA="${DATA:-$REPO/../shared/data/ttrl/MATH-L1-TTT.json}"
ESTIMATOR="${ESTIMATOR:-majority_vote}"
GPUS="${GPUS:-1}"
OUT="${OUT:-/tmp/ttrl-openrlhf-e2e}"
TTRL="${TTRL:-ttrl}"
DRY_RUN=""
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN="--dry-run"; fi

export HF_HUB_OFFLINE=1
mkdir -p "$OUT"

if [[ -z "$DRY_RUN" ]]; then
  nvidia-smi -L >/dev/null || { echo "no NVIDIA GPU visible" >&2; exit 1; }
  python -c "import vllm, deepspeed, flash_attn" || { echo "install openrlhf[vllm] with CUDA first" >&2; exit 1; }
fi

# A small, fast configuration: 8 votes / 4 trained, 512 new tokens, one episode of 4 steps with an
# evaluation every 2. OpenRLHF needs at least one micro-batch of trained responses per GPU and a train
# batch that is a whole number of micro-batches on every GPU, so both grow with GPUS.
PROMPTS=$(( GPUS * ((4 + GPUS - 1) / GPUS) ))   # prompts per step: at least 4, a multiple of GPUS
TRAIN_BATCH=$(( 2 * GPUS ))                      # one micro-batch of 2 per GPU per optimizer update
cat > "$OUT/run.yaml" <<YAML
trainer: openrlhf
estimator:
  name: $ESTIMATOR
answers:
  task: math
openrlhf:
  model: $MODEL
  prompt_data: $DATA
  eval_data: $DATA
  n_votes: 8
  n_train: 4
  eval_samples: 4
  max_new_tokens: 512
  max_len: 1536
  episodes: 1
  gpus_per_node: $GPUS
  output_dir: $OUT
  save_steps: 2
  flags:
    data.max_samples: $(( 4 * PROMPTS ))
    rollout.batch_size: $PROMPTS
    rollout.micro_batch_size: 2
    train.batch_size: $TRAIN_BATCH
    train.micro_batch_size: 2
    eval.steps: 2
    vllm.enforce_eager: true
YAML

if [[ -n "$DRY_RUN" ]]; then
  exec "$TTRL" train --config "$OUT/run.yaml" --dry-run
fi

"$TTRL" train --config "$OUT/run.yaml" 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
[[ $status -eq 0 ]] || { echo "training failed (exit $status), see $OUT/train.log" >&2; exit "$status"; }

# OpenRLHF logs every step's status; ttrl's metrics ride in it (Experience.info -> ttrl/...).
for key in "ttrl/groups" "ttrl/failed_groups" "ttrl/majority_ratio" "ttrl/ground_truth_ratio" "eval_"; do
  grep -q "$key" "$OUT/train.log" || { echo "missing '$key' in $OUT/train.log" >&2; exit 1; }
done
if [[ "$ESTIMATOR" == "majority_vote" ]]; then
  grep -q "ttrl/label_accuracy" "$OUT/train.log" || { echo "missing ttrl/label_accuracy" >&2; exit 1; }
fi
echo "end-to-end OK: $OUT/train.log, checkpoints in $OUT/model"
