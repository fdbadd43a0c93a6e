#!/usr/bin/env bash
# The GPU figures of the documentation in one run, on a machine with one CUDA GPU and this
# repository installed (about 5-8 minutes on a modern GPU):
#   1. bench/bench_gpu.py on CUDA at reduced sizes (3 random subnets, 8 repeats, 20 subnets for
#      Kendall's tau): supernet vs static step at batch 128 bf16 (ImageNet shapes), the batch-2
#      step against the batch-128 step, sandwich images/s, Transformer tokens/s, latency modes
#      (eager, CUDA graph, ONNX Runtime on the CPU);
#   2. the CUDA tests (pytest -m cuda): one epoch with trainer=gpu, search.py hardware=gpu and
#      gpu_lut with budget 5, exported subnet on the GPU == supernet.
# Usage: bash bench/gpu_check.sh [extra bench_gpu.py arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("no CUDA GPU is visible: this check needs one")
p = torch.cuda.get_device_properties(0)
print(f"GPU {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
PY
start=$(date +%s)
python bench/bench_gpu.py --device cuda --random 3 --repeats 8 --sandwich-steps 5 \
  --latency-subnets 5 --latency-repeats 3 --tau-subnets 20 --timed 20 "$@"
echo "bench: $(( $(date +%s) - start )) s"
python -m pytest -q -p no:cacheprovider -m cuda -rs tests/
echo "total: $(( $(date +%s) - start )) s"
