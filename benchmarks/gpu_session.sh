#!/usr/bin/env bash
# One GPU session: the cuda-marked tests, then the benchmarks at the real sizes.
# Usage (on a machine with a GPU, the project installed or its wheels in .whl/):
#   OUT=results/gpu bash benchmarks/gpu_session.sh
# Each part has its own time limit so that a slow one cannot starve the others;
# logs and JSON go to $OUT. PARTS picks the parts (default tests,bench); the part
# "compile" times compiled against eager layers at the real size (minutes of
# compilation: give it a device call of its own, PARTS=compile).
set -u
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ -d .whl ] && ! python3 -c "import speechbrain" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"

PARTS=",${PARTS:-tests,bench},"
[[ $PARTS == *,tests,* ]] && timeout "${TEST_LIMIT:-240}" python3 -m pytest -q -m cuda -p no:cacheprovider -o addopts="-ra" \
    tests/test_cuda.py tests/test_retrieval.py tests/test_attention_paths.py \
    tests/test_compile_layers.py 2>&1 | tee "$OUT/cuda_tests.log" | tail -25

[[ $PARTS == *,bench,* ]] && timeout "${BENCH_LIMIT:-270}" python3 -m benchmarks --quick --sizes "${SIZES:-small,real}" \
    --only "${ONLY:-train,teacher,retrieval,optimizer}" --output "$OUT/bench.json" 2>&1 \
    | tee "$OUT/bench.log" | tail -70

if [[ $PARTS == *,compile,* ]]; then
    timeout "${COMPILE_LIMIT:-420}" python3 -m benchmarks --sizes real --only compile --rounds 3 \
        --min-seconds 5 --max-seconds 15 --output "$OUT/compile.json" 2>&1 \
        | tee "$OUT/compile.log" | tail -20
fi
