#!/usr/bin/env bash
# Every GPU check in one run, each bounded in time, each writing its output to $OUT (default
# gpu_out/) as it goes, so that whatever finishes is kept:
#   1. the test suite's CUDA tests (tests/test_gpu.py, marker `gpu`);
#   2. a CIFAR-shaped SE-ResNet-56 sweep of 8 trials at 0.25 GPU, then 2 trials at 1 GPU
#      (benchmarks/gpu_share.py: images/s per trial and in total, GPU utilisation, SE/plain,
#      and the latency/throughput metrics the trials logged);
#   3. SE-ResNet-50 against ResNet-50 training throughput at batch 256, bf16, channels-last,
#      eager and with torch.compile (benchmarks/gpu_throughput.py).
#
#   bash benchmarks/gpu_check.sh
#
# Python packages the machine lacks can come as one archive of an installed site-packages
# folder, .gpu/site.tar.xz (unpacked to /tmp/site and put on PYTHONPATH).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
began=$(date +%s)
stamp() { echo "== $1 ($(( $(date +%s) - began )) s)" | tee -a "$out/steps.txt"; }

if [ -f .gpu/site.tar.xz ]; then
  mkdir -p /tmp/site && tar xJf .gpu/site.tar.xz -C /tmp/site --strip-components=1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
python3 - <<'PY' 2>&1 | tee "$out/machine.txt"
import platform, torch
print(platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print(torch.cuda.get_device_name(), torch.cuda.get_device_capability(),
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
PY
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv \
  | tee -a "$out/machine.txt"

stamp "1. CUDA tests"
timeout "${TESTS_S:-130}" python3 -m pytest tests/test_gpu.py -m gpu -v -p no:cacheprovider \
  -o addopts="" 2>&1 | tee "$out/gpu_tests.txt" | grep -E "PASS|FAIL|ERROR|SKIP|passed|failed"

stamp "2. fractional GPUs"
timeout "${SHARE_S:-160}" python3 -m benchmarks.gpu_share --shared-trials 8 --share 0.25 \
  --epochs 3 --train-size 16000 --json "$out/gpu_share.json" > "$out/gpu_share.txt" 2>&1
tail -n 22 "$out/gpu_share.txt"

stamp "3a. SE-ResNet-50 throughput, eager"
timeout "${EAGER_S:-60}" python3 -m benchmarks.gpu_throughput --rows selab,timm --modes eager \
  --rounds 3 --steps 8 --json "$out/throughput_eager.json" 2>&1 | tee "$out/throughput.txt"

stamp "3b. SE-ResNet-50 throughput, torch.compile"
timeout "${COMPILE_S:-170}" python3 -m benchmarks.gpu_throughput --rows selab \
  --modes compiled --rounds 3 --steps 8 --json "$out/throughput_compiled.json" 2>&1 \
  | tee -a "$out/throughput.txt"
stamp "done"
