#!/usr/bin/env bash
# One call on a GPU machine checks the CUDA backend end to end and writes the results to $OUT.
#
#   NOT YET RUN ON A GPU: written on a machine without one (see the `blocked` note in the
#   CUDA backend's issue). Expect the first run to need fixes.
#
# Usage (from the repository root, on the GPU machine; there is no Rust there, so the binaries
# are built elsewhere and carried):
#   SQLRFT_BIN=path/to/sqlrft                  # its `sqlrft cuda` commands (default: sqlrft on PATH)
#   SQLRFT_CUDA_TEST_BIN=path/to/it-<hash>     # optional: crates/cuda's integration-test binary
#   OUT=/some/folder bash scripts/gpu-check.sh [--quick]
#
# Steps (each recorded as passed / failed / skipped in $OUT/summary.md; a failed step does not
# stop the later ones; the exit status is 1 when any step failed):
#   1. probe      the GPU as the binary sees it (probe.json)
#   2. kernels    every kernel against its CPU reference at small shapes (kernel-checks.json)
#   3. tests      crates/cuda's GPU integration tests, incl. the tiny model vs the CPU reference
#   4. hf         the full Qwen2.5-0.5B-shaped model (random weights, made here from its config)
#                 against transformers: logits and log-probs (hf-compare.json)
#   5. grpo       a short GRPO run whose reward must rise (grpo.json): `cuda grpo-smoke` (tiny
#                 random model, learnable reward, everything on the GPU), or GRPO_SMOKE_CMD
#                 (a `sqlrft train` command, once the trainer runs on the CUDA backend)
#   6. bench      sqlrft vs TRL GRPOTrainer at Qwen2.5-0.5B and 1.5B shapes, 16 prompts x 8
#                 generations x 256 tokens, full fine-tuning: time per step split into generation
#                 and update, tokens/s, memory, MFU (bench.json); TRL comes from carried wheels
#                 (.whl/, see scripts/gpu/fetch-wheels.sh)
# --quick skips step 6; --bench runs only step 6 (the whole script may not fit one 10-minute
# device call: run `--quick`, then `--bench`).
#
# At most 8 files come back from $OUT, and these are 8: summary.md, log.txt, probe.json,
# kernel-checks.json, tests.log, hf-compare.json, grpo.json, bench.json.

set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
export OUT
QUICK=0
BENCH_ONLY=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  --bench) BENCH_ONLY=1 ;;
esac
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

exec > >(tee -a "$OUT/log.txt") 2>&1
echo "== gpu-check $(date -u +%FT%TZ) in $PWD"

# The binary: `sqlrft cuda`.
if [ -n "${SQLRFT_BIN:-}" ]; then
  CUDA=("$SQLRFT_BIN" cuda)
elif command -v sqlrft >/dev/null; then
  CUDA=(sqlrft cuda)
else
  CUDA=()
fi

# NVRTC, CUDA's headers and cuBLASLt from the Python environment's NVIDIA wheels, unless the
# caller pointed at others. cudarc finds libcublasLt.so.13 through the loader's path.
wheels=$("$PY" - <<'PY' 2>/dev/null
import pathlib, nvidia
for p in nvidia.__path__:
    d = pathlib.Path(p) / "cu13"
    if d.is_dir():
        print(d)
        break
PY
)
if [ -n "$wheels" ]; then
  export SQLRFT_NVRTC_LIB="${SQLRFT_NVRTC_LIB:-$wheels/lib/libnvrtc.so.13}"
  export SQLRFT_CUDA_INCLUDE="${SQLRFT_CUDA_INCLUDE:-$wheels/include}"
  export LD_LIBRARY_PATH="$wheels/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export SQLRFT_KERNEL_CACHE="${SQLRFT_KERNEL_CACHE:-/tmp/sqlrft-kernels}"
echo "nvidia wheels: ${wheels:-none found}; NVRTC: ${SQLRFT_NVRTC_LIB:-loader path}"
nvidia-smi || true

declare -a SUMMARY=()
FAILED=0
record() { # step status note
  SUMMARY+=("| $1 | $2 | $3 |")
  [ "$2" = failed ] && FAILED=1
  echo "-- step $1: $2 ${3:+($3)}"
}
run_step() { # name note command...
  local name=$1 note=$2
  shift 2
  echo "== step $name: $*"
  if "$@"; then record "$name" passed "$note"; else record "$name" failed "$note"; fi
}

if [ ${#CUDA[@]} -eq 0 ]; then
  record probe failed "no binary: set SQLRFT_BIN or put sqlrft on PATH"
elif [ $BENCH_ONLY -eq 1 ]; then
  record checks skipped "--bench"
else
  run_step probe "probe.json" sh -c '"$@" probe > "$OUT/probe.json"' _ "${CUDA[@]}"
  run_step kernels "kernel-checks.json" "${CUDA[@]}" check --seed "${SEED:-1}" --out "$OUT/kernel-checks.json"
  if [ $FAILED -ne 0 ]; then
    # A kernel fault can poison the whole CUDA context: one process per group says which.
    for g in embedding rmsnorm rope residual swiglu attention flash_attention logprob optimizer cast kv_cache sampling gemm; do
      echo "== kernels, group $g alone"
      "${CUDA[@]}" check --seed "${SEED:-1}" --only "$g" || true
    done
  fi
fi

if [ $BENCH_ONLY -eq 1 ]; then
  :
elif [ -n "${SQLRFT_CUDA_TEST_BIN:-}" ]; then
  # On a GPU machine the GPU tests must run, not skip.
  # The CPU emulator test needs the source tree at its build-time path: it runs in CI instead.
  run_step tests "tests.log" sh -c '"$1" --nocapture --test-threads 1 --skip emulator > "$OUT/tests.log" 2>&1 &&
    ! grep -E "skipped .*(libcuda|no usable GPU)" "$OUT/tests.log"' _ "$SQLRFT_CUDA_TEST_BIN"
else
  record tests skipped "SQLRFT_CUDA_TEST_BIN not set"
fi

if [ ${#CUDA[@]} -gt 0 ] && [ $BENCH_ONLY -eq 0 ]; then
  run_step hf "hf-compare.json" "$PY" scripts/gpu/hf_compare.py --out "$OUT/hf-compare.json" \
    --work "${WORK:-/tmp/sqlrft-gpu-check}" -- "${CUDA[@]}"
fi

if [ $BENCH_ONLY -eq 1 ]; then
  :
elif [ -n "${GRPO_SMOKE_CMD:-}" ]; then
  # Once `sqlrft train` runs on the CUDA backend: a short run that exits non-zero unless the
  # reward rose.
  run_step grpo "reward rises" bash -c "$GRPO_SMOKE_CMD"
elif [ ${#CUDA[@]} -gt 0 ]; then
  run_step grpo "grpo.json" "${CUDA[@]}" grpo-smoke --steps "${GRPO_STEPS:-40}" --out "$OUT/grpo.json"
else
  record grpo skipped "no binary"
fi

if [ $QUICK -eq 1 ]; then
  record bench skipped "--quick"
else
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  run_step bench "bench.json" "$PY" scripts/gpu/trl_bench.py --out "$OUT/bench.json" \
    --sizes "${BENCH_SIZES:-0.5b,1.5b}" --steps "${BENCH_STEPS:-3}" --attention "${ATTENTION:-materialised}" -- "${CUDA[@]}"
fi

{
  echo "# gpu-check $(date -u +%FT%TZ)"
  echo
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'
  echo
  echo "| step | status | output |"
  echo "|---|---|---|"
  printf '%s\n' "${SUMMARY[@]}"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
exit $FAILED
