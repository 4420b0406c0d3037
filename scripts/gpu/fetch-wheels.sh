#!/usr/bin/env bash
# Run HERE (a machine with PyPI access), from the repository root, before a gpu-check call: puts
# the wheels the GPU machine lacks for the TRL benchmark into .whl/ (git-ignored through
# .git/info/exclude), which the device call carries and gpu-check.sh installs with --no-deps.
# The GPU image already has torch, transformers, accelerate, tokenizers, pyarrow, pandas.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
ls -la .whl
