#!/usr/bin/env bash
# The one-run GPU check: on a machine with one H100/H200, CUDA 13 and PyTorch (no Rust, no
# network), checks the CUDA backend end to end in under 8 minutes and writes what it got to
# $OUT/gpu-check.json and $OUT/gpu-check.md, whatever fails.
#
#   First run on an H200 on 2026-12-04 (README, "On a GPU"). Every step has its own timeout and
#   records its own outcome, so one run says what fails.
#
# Before: `bash scripts/gpu/prepare.sh` on a machine with Rust fills gpu-bundle/ (git-ignored:
# the release `sqlrft` without DuckDB, crates/cuda's test binary, wheels). Carry gpu-bundle with
# the repository, then from its root on the GPU machine:
#   bash scripts/gpu-check.sh            # OUT defaults to ./gpu-check-out
# SQLRFT_BIN / SQLRFT_CUDA_TEST_BIN override the bundle's binaries; --no-bench skips step 6.
#
# Steps (budget in seconds; the whole run is held under 470 s):
#   1. device   nvidia-smi and `sqlrft cuda probe`: GPU, driver, architecture         (20)
#   2. kernels  every kernel against its CPU reference on random inputs               (60)
#   3. tiny     the CUDA backend against the CPU backend on a tiny model: logits,
#               scores, gradients (full and LoRA), sampling log-probs, AdamW, state   (75)
#   4. hf       Qwen2.5-0.5B shape, random weights made here with transformers: logits,
#               log-probs and gradients against transformers                          (90)
#   5. grpo     20 GRPO steps of `sqlrft train --device cuda` whose reward must rise  (60)
#   6. bench    sqlrft vs TRL's GRPOTrainer, Qwen2.5-0.5B and 1.5B shapes, 16 prompts
#               x 8 generations x 256 tokens: generation/update split, tokens/s,
#               peak memory, MFU                                                      (rest)
# Files back (a device call returns at most 8): gpu-check.json, gpu-check.md, log.txt,
# kernel-checks.json, tiny.log, hf-compare.json, grpo.json, bench.json.

set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1
BENCH=1
[ "${1:-}" = "--no-bench" ] && BENCH=0
PY="${PYTHON:-python3}"
SQLRFT="${SQLRFT_BIN:-$PWD/gpu-bundle/sqlrft}"
TESTS="${SQLRFT_CUDA_TEST_BIN:-$PWD/gpu-bundle/cuda-it}"
WORK="${WORK:-/tmp/sqlrft-gpu-check}"
START=$(date +%s)
DEADLINE=$((START + 470))
mkdir -p "$WORK"

exec > >(tee -a "$OUT/log.txt") 2>&1
echo "== gpu-check $(date -u +%FT%TZ) in $PWD"

# NVRTC and CUDA's headers from the image's NVIDIA wheels (cudarc finds libcublasLt.so.13 and
# libnvrtc through the loader's path), unless the caller set them.
wheels=$("$PY" - <<'PY' 2>/dev/null
import pathlib, nvidia
for p in nvidia.__path__:
    for sub in ("cu13", ""):
        d = pathlib.Path(p) / sub
        if (d / "lib").is_dir() and list((d / "lib").glob("libnvrtc.so*")):
            print(d)
            raise SystemExit
PY
)
if [ -n "$wheels" ]; then
  export SQLRFT_NVRTC_LIB="${SQLRFT_NVRTC_LIB:-$(ls "$wheels"/lib/libnvrtc.so* | head -1)}"
  export SQLRFT_CUDA_INCLUDE="${SQLRFT_CUDA_INCLUDE:-$wheels/include}"
fi
for d in $("$PY" -c 'import pathlib, nvidia
for p in nvidia.__path__:
    for lib in pathlib.Path(p).glob("**/lib"):
        print(lib)' 2>/dev/null); do
  LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
export SQLRFT_KERNEL_CACHE="${SQLRFT_KERNEL_CACHE:-$WORK/kernels}"
if ls gpu-bundle/whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" gpu-bundle/whl/*.whl && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
echo "NVRTC: ${SQLRFT_NVRTC_LIB:-loader path}; sqlrft: $SQLRFT; tests: $TESTS"

STEPS_JSON="$WORK/steps.jsonl"
: > "$STEPS_JSON"
FAILED=0
# step NAME BUDGET OUTPUT COMMAND...: runs COMMAND under the smaller of its budget and what is
# left of the run's, and records passed / failed / timed out / skipped with its wall time.
step() {
  local name=$1 budget=$2 output=$3
  shift 3
  local left=$((DEADLINE - $(date +%s)))
  [ "$budget" -gt "$left" ] && budget=$left
  local status note="" t0 t1 rc
  t0=$(date +%s)
  if [ "$budget" -lt 5 ]; then
    status=skipped note="no time left of the 470 s"
  else
    echo "== step $name (≤ ${budget}s): $*"
    timeout --kill-after=5 "$budget" "$@"
    rc=$?
    case $rc in
      0) status=passed ;;
      124 | 137) status="timed out" note="after ${budget}s" ;;
      *) status=failed note="exit $rc" ;;
    esac
  fi
  t1=$(date +%s)
  [ "$status" = passed ] || [ "$status" = skipped ] || FAILED=1
  echo "-- step $name: $status ${note:+($note)} in $((t1 - t0))s"
  "$PY" -c 'import json,sys; print(json.dumps(dict(zip(["name","status","note","output","seconds"], sys.argv[1:5] + [int(sys.argv[5])]))))' \
    "$name" "$status" "$note" "$output" "$((t1 - t0))" >> "$STEPS_JSON"
}
missing() { # name output reason
  echo "-- step $1: skipped ($3)"
  "$PY" -c 'import json,sys; print(json.dumps({"name":sys.argv[1],"status":"skipped","note":sys.argv[3],"output":sys.argv[2],"seconds":0}))' \
    "$1" "$2" "$3" >> "$STEPS_JSON"
}

if [ -x "$SQLRFT" ]; then
  step device 20 gpu-check.json sh -c 'nvidia-smi && "$1" cuda probe > "$2/probe.json"' _ "$SQLRFT" "$WORK"
  step kernels 60 kernel-checks.json "$SQLRFT" cuda check --seed "${SEED:-1}" --out "$OUT/kernel-checks.json"
else
  missing device gpu-check.json "no binary at $SQLRFT: run scripts/gpu/prepare.sh first"
  missing kernels kernel-checks.json "no binary"
fi
if [ -x "$TESTS" ]; then
  # On a GPU the tests must run, not skip (but the one that checks the message a machine
  # without a GPU gets, which skips because a GPU is present); the emulator test needs the
  # source tree's build path and runs in CI instead.
  step tiny 75 tiny.log sh -c '"$1" --nocapture --test-threads 1 --skip emulator > "$2/tiny.log" 2>&1;
    rc=$?; cat "$2/tiny.log"; [ $rc -eq 0 ] &&
    ! grep -E "(^|\.\.\. )skipped " "$2/tiny.log" | grep -qv ": a GPU is present"' _ "$TESTS" "$OUT"
else
  missing tiny tiny.log "no test binary at $TESTS"
fi
if [ -x "$SQLRFT" ]; then
  step hf 90 hf-compare.json "$PY" scripts/gpu/hf_compare.py --out "$OUT/hf-compare.json" \
    --work "$WORK/hf" -- "$SQLRFT" cuda
  step grpo 60 grpo.json "$PY" scripts/gpu/grpo_check.py --out "$OUT/grpo.json" --device cuda \
    --steps 20 --work "$WORK/grpo" -- "$SQLRFT"
  if [ $BENCH -eq 1 ]; then
    step bench 400 bench.json "$PY" scripts/gpu/trl_bench.py --out "$OUT/bench.json" \
      --sizes "${BENCH_SIZES:-0.5b,1.5b}" --modes "${BENCH_MODES:-lora,full}" \
      --steps "${BENCH_STEPS:-2}" --deadline "$DEADLINE" -- "$SQLRFT" cuda
  else
    missing bench bench.json "--no-bench"
  fi
else
  missing hf hf-compare.json "no binary"
  missing grpo grpo.json "no binary"
  missing bench bench.json "no binary"
fi

"$PY" - "$OUT" "$STEPS_JSON" "$WORK/probe.json" "$START" <<'PY'
import json, pathlib, subprocess, sys, time
out, steps_path, probe_path, start = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3]), int(sys.argv[4])
steps = [json.loads(l) for l in open(steps_path) if l.strip()]
def smi(q):
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception as e:
        return f"unavailable: {e}"
device = {"nvidia_smi": smi("name,driver_version,memory.total,compute_cap")}
try:
    device["probe"] = json.loads(probe_path.read_text())
except Exception as e:
    device["probe"] = f"unavailable: {e}"
results = {}
for s in steps:
    f = out / s["output"]
    if s["output"].endswith(".json") and f.is_file() and f.name != "gpu-check.json":
        try:
            results[s["name"]] = json.loads(f.read_text())
        except Exception as e:
            results[s["name"]] = f"unreadable: {e}"
report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
          "seconds": int(time.time()) - start, "device": device, "steps": steps, "results": results}
(out / "gpu-check.json").write_text(json.dumps(report, indent=2))
lines = [f"# gpu-check {report['started']} ({report['seconds']} s)", "",
         f"GPU: {device['nvidia_smi']}", "", "| step | status | seconds | output | note |", "|---|---|---|---|---|"]
lines += [f"| {s['name']} | {s['status']} | {s['seconds']} | {s['output']} | {s['note']} |" for s in steps]
(out / "gpu-check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit $FAILED
