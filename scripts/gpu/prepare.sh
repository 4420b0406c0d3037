#!/usr/bin/env bash
# Run HERE (a machine with Rust and PyPI access), from anywhere, before the one GPU check: builds
# what the GPU machine (CUDA 13 and PyTorch, no Rust, no network) needs into gpu-bundle/
# (git-ignored), under the 64 MiB a device call carries:
#   gpu-bundle/sqlrft    the release binary without DuckDB (`--no-default-features`: train,
#                        model, cuda, publish model): `sqlrft train --device cuda`, `sqlrft cuda …`
#   gpu-bundle/cuda-it   crates/cuda's integration tests, release build: the tiny model and the
#                        CUDA backend against the CPU reference (skip without a GPU, run with one)
#   gpu-bundle/whl/      wheels the GPU image lacks for the TRL benchmark (TRL and its datasets;
#                        the image has torch, transformers, PEFT, accelerate)
# Then, on the GPU machine, from the repository root: bash scripts/gpu-check.sh
# Measured: 28 MiB, 12 min from a cold cache on a 2-core VM (no DuckDB is compiled); uses
# CARGO_TARGET_DIR when set, else ~/.cache/sqlrft/target-gpu.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUNDLE=gpu-bundle
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sqlrft/target-gpu}"
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/whl"

cargo build --release --locked -p sqlrft --no-default-features
cp "$CARGO_TARGET_DIR/release/sqlrft" "$BUNDLE/sqlrft"

# The test binary's path is in cargo's JSON messages (its file name carries a hash).
test_bin=$(cargo test --release --locked -p sqlrft-cuda --test it --no-run --message-format=json \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "it":
        print(m["executable"])')
cp "$test_bin" "$BUNDLE/cuda-it"
strip "$BUNDLE/sqlrft" "$BUNDLE/cuda-it"

python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$BUNDLE/whl" trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19

size=$(du -sm "$BUNDLE" | cut -f1)
du -sh "$BUNDLE"/* "$BUNDLE"
if [ "$size" -ge 60 ]; then
  echo "gpu-bundle is ${size} MiB: a device call carries 64 MiB with the working tree" >&2
  exit 1
fi
echo "ready: carry gpu-bundle and run scripts/gpu-check.sh on the GPU machine"
