#!/usr/bin/env bash
# Every GPU figure of clipguide in one run (at most about 8 minutes): see benchmarks/gpu_table.py.
#   bash benchmarks/gpu.sh                       # on a GPU machine, from the repository root
#   bash benchmarks/gpu.sh --device cpu --quick  # anywhere: the same run on test-size models
# Writes gpu_results.json (--json PATH to choose) and prints the Markdown table for benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
exec "$PYTHON" benchmarks/gpu_table.py "$@"
