#!/usr/bin/env bash
# End-to-end check of ttrl's verl adapter on a GPU machine: a short TTRL run whose log must show
# ttrl's group metrics (ttrl/...) from the training steps and verl's validation metrics (val-core/...).
#
#   examples/verl/gpu_end_to_end.sh [--dry-run]
#
# Needs: 1+ NVIDIA GPU, an environment of its own with `pip install 'verl[vllm]==0.9.1' 'ttrl[verl]'`
# (verl pins transformers<5.11; see docs/verl.md), and the model already on local disk (nothing is
# downloaded: HF_HUB_OFFLINE=1). Environment:
#   MODEL      local directory or cached id   (default Qwen/Qwen2.5-Math-1.5B)
#   DATA       prompt file {"prompt","answer"} (default ../shared/data/ttrl/MATH-L1-TTT.json beside the repo)
#   ESTIMATOR  majority_vote | entropy | self_certainty | dare   (default majority_vote)
#   GPUS       GPUs to use                    (default 1)
#   OUT        output folder                  (default /tmp/ttrl-verl-e2e)
# With --dry-run it only prints the resolved verl configuration (no GPU needed).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODEL="${MODEL:-Qwen/Qwen2.5-Math-1.5B}"
DATA="${DATA:-$REPO/../shared/data/ttrl/MATH-L1-TTT.json}"
ESTIMATOR="${ESTIMATOR:-majority_vote}"
GPUS="${GPUS:-1}"
OUT="${OUT:-/tmp/ttrl-verl-e2e}"
TTRL="${TTRL:-ttrl}"
DRY_RUN=""
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN="--dry-run"; fi

export HF_HUB_OFFLINE=1
mkdir -p "$OUT"

if [[ -z "$DRY_RUN" ]]; then
  nvidia-smi -L >/dev/null || { echo "no NVIDIA GPU visible" >&2; exit 1; }
  python -c "import vllm, verl, transfer_queue" || { echo "install verl[vllm]==0.9.1 and ttrl[verl] first" >&2; exit 1; }
fi

# A small, fast configuration: 8 votes / 4 trained, 512 response tokens, 16 prompts, 3 steps.
cat > "$OUT/run.yaml" <<YAML
trainer: verl
estimator:
  name: $ESTIMATOR
answers:
  task: math
verl:
  model: $MODEL
  train_files: $DATA
  val_files: $DATA
  n_votes: 8
  n_train: 4
  val_n: 4
  max_prompt_length: 512
  max_response_length: 512
  train_batch_size: 4
  ppo_mini_batch_size: 4
  micro_batch_size_per_gpu: 2
  total_epochs: 1
  n_gpus_per_node: $GPUS
  test_freq: 2
  logger: [console]
  experiment_name: gpu-end-to-end
  output_dir: $OUT
  overrides:
    data.train_max_samples: 16
    data.val_max_samples: 16
    trainer.total_training_steps: 3
    actor_rollout_ref.rollout.gpu_memory_utilization: 0.5
    actor_rollout_ref.rollout.enforce_eager: true
YAML

if [[ -n "$DRY_RUN" ]]; then
  exec "$TTRL" train --config "$OUT/run.yaml" --dry-run
fi

"$TTRL" train --config "$OUT/run.yaml" 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
[[ $status -eq 0 ]] || { echo "training failed (exit $status), see $OUT/train.log" >&2; exit "$status"; }

# verl's console logger prints every step's metrics; ttrl's ride in them under ttrl/.
for key in "ttrl/groups" "ttrl/ground_truth_ratio" "ttrl/trained_reward_accuracy" "val-core/"; do
  grep -q "$key" "$OUT/train.log" || { echo "missing '$key' in $OUT/train.log" >&2; exit 1; }
done
if [[ "$ESTIMATOR" == "majority_vote" ]]; then
  grep -q "ttrl/label_accuracy" "$OUT/train.log" || { echo "missing ttrl/label_accuracy" >&2; exit 1; }
fi
echo "end-to-end OK: $OUT/train.log, verl config in $OUT/ttrl_verl_config.yaml"
