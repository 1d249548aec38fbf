#!/usr/bin/env bash
# GPU check for one H200 (or any CUDA GPU), ~10 minutes, no internet: vLLM vs HF rollout throughput and bf16
# training step throughput / MFU of each trainer family, full-parameter vs LoRA, on a ~0.4B Qwen2 built from a
# config (see benchmarks/gpu_check.py). Results: a table on stdout and OUT_DIR/gpu_check.json.
#
#   benchmarks/gpu_check.sh [OUT_DIR] [--budget-s 540] [--families npo,unlikelihood,nft_offline,nft_online]
#   benchmarks/gpu_check.sh /tmp/smoke --cpu-smoke      # every path on a tiny model on CPU (~1.5 min on 2 cores)
#
# OUT_DIR defaults to $OUT (the device tool's output folder), else benchmarks/gpu_check_out.
# Without a GPU (and without --cpu-smoke) it checks the imports, says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
out="${OUT:-benchmarks/gpu_check_out}"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then out="$1"; shift; fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
exec timeout 600 python benchmarks/gpu_check.py --out "$out" "$@"
