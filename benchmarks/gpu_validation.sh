#!/usr/bin/env bash
# The GPU validation pass, prepared to run as is on a machine with a CUDA device, from the
# repository root, after `pip install --no-build-isolation --no-deps .`:
#
#   benchmarks/gpu_validation.sh OUTDIR [quick|full]
#
# 1. the GPU tests (every CUDA kernel against its CPU twin), each launch synchronised and
#    checked (CLIPADAPT_CUDA_SYNC=1) so a fault is blamed on the kernel that caused it;
# 2. compute-sanitizer memcheck, racecheck and synccheck over the small GPU tests;
# 3. the GPU benchmarks, JSON into OUTDIR (full: the sizes of the validation issue; quick:
#    small sizes, to check the pass itself in a few minutes).
# Every step runs under a time limit and the script goes on after a failure, so one run
# collects everything; the summary at the end lists each step's exit status.
set -uo pipefail
out=${1:?usage: benchmarks/gpu_validation.sh OUTDIR [quick|full]}
mode=${2:-full}
mkdir -p "$out"
declare -a summary=()

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name" | tee -a "$out/log.txt"
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local status=$?
  tail -n 5 "$out/$name.txt" | tee -a "$out/log.txt"
  summary+=("$name: exit $status")
}

{ nvidia-smi; python -c "import clipadapt, json; print(json.dumps(clipadapt.device_summary(), indent=1))"; } \
  > "$out/device.txt" 2>&1

CLIPADAPT_CUDA_SYNC=1 step gpu-tests 900 python -m pytest -m gpu -q -p no:cacheprovider tests

# The sanitizers slow every launch 10-100x: the small GPU test files only, stopping at the first failure.
small_tests=(tests/test_knn_gpu.py tests/test_kmeans_gpu.py tests/test_sparse_gpu.py tests/test_linalg_gpu.py)
for tool in memcheck racecheck synccheck; do
  step "sanitizer-$tool" 1200 compute-sanitizer --tool "$tool" --error-exitcode 1 --print-limit 20 \
    python -m pytest -m gpu -x -q -p no:cacheprovider "${small_tests[@]}"
done

if [ "$mode" = quick ]; then
  n_knn=100000; n_lp=100000; n_kmeans=100000; clusters=4096; m_reclip=10000; n_mudg=100000
else
  n_knn=1000000; n_lp=1000000; n_kmeans=1000000; clusters=65536; m_reclip=51000; n_mudg=1000000
fi
for dtype in bfloat16 float32; do
  step "bench-knn-$dtype" 1800 clipadapt bench knn --device cuda --n "$n_knn" --d 768 --k 10,100 --dtype "$dtype" \
    --json "$out/knn-{device}-n{n}-d{d}-k{k}-{dtype}.json"
done
step bench-lp 1800 clipadapt bench lp --device cuda --n "$n_lp" --classes 1000 --d 768 \
  --json "$out/lp-{device}-n{n}-c{classes}-d{d}.json"
step bench-kmeans 1800 clipadapt bench kmeans --device cuda --n "$n_kmeans" --d 768 --clusters "$clusters" \
  --json "$out/kmeans-{device}-n{n}-d{d}-k{clusters}.json"
step bench-reclip-lp 1800 clipadapt bench reclip-lp --device cuda --m "$m_reclip" --classes 1000 \
  --json "$out/reclip-lp-{device}-m{m}-c{classes}.json"
step bench-mudg-index 1800 clipadapt bench mudg-index --device cuda --n "$n_mudg" --d 768 \
  --json "$out/mudg-index-{device}-n{n}-d{d}-k{clusters}.json"

printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
