#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU, TensorRT and cuda-python (pip install -e '.[trt]'),
# train a tiny run, export it with --trt (FP16 engine), check the engine's parity on real clips,
# and benchmark training and inference. Prints PASS/FAIL per step; exit status = failures.
# About 3-4 minutes on one H100. Usage: scripts/gpu_check.sh [PYTHON]
set -u
PY=${1:-${PY:-python3}}
WORK=$(mktemp -d /tmp/prp-gpu-check.XXXXXX)
export PRP_DEPLOY_CACHE="$WORK/cache"
FAILS=0
step() {
  local name=$1; shift
  local t0=$(date +%s)
  if timeout 240 "$@" >"$WORK/$name.log" 2>&1; then
    echo "PASS $name ($(( $(date +%s) - t0 )) s)"
  else
    echo "FAIL $name ($(( $(date +%s) - t0 )) s), last lines of $WORK/$name.log:"
    tail -n 8 "$WORK/$name.log" | sed 's/^/    /'
    FAILS=$((FAILS + 1))
  fi
}
step environment "$PY" -c "import torch, tensorrt, cuda.bindings; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(), 'TensorRT', tensorrt.__version__)"
step train "$PY" -m prp_deploy train --out "$WORK/run" --pretrain-epochs 1 --finetune-epochs 1 --device cuda
step export_trt "$PY" -m prp_deploy export "$WORK/run" --trt --triton --batch 1:8:32
step engine_parity "$PY" -c "
import json, sys
r = json.load(open('$WORK/run/export/parity.json'))
plan = [c for c in r['checks'] if c['artifact'] == 'model.plan' and c['inputs'] == 'real']
print(json.dumps({c['output']: c['stats'] for c in plan}, indent=1))
sys.exit(0 if r['passed'] and r['artifacts'].get('model.plan') and plan else 1)"
step engine_reload "$PY" -c "
from prp_deploy.runtime.backends import TensorRTBackend
import numpy as np
b = TensorRTBackend('$WORK/run/export/model.plan')
out = b.run(np.zeros((3, *b.clip_shape), np.float32))
assert out['logits'].shape[0] == 3, out
print({k: v.shape for k, v in out.items()})"
step bench_inference "$PY" -m prp_deploy bench --model "$WORK/run/export" --batch 1,8,32 --json "$WORK/bench.json"
step bench_train "$PY" benchmarks/bench_train.py --device cuda --backbone r21d --frames 16 --crop 112 --batch 32 --steps 20
cat "$WORK/bench_inference.log" "$WORK/bench_train.log" 2>/dev/null
echo "gpu_check: $FAILS failed step(s); logs in $WORK"
exit $FAILS
