#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU and torch with CUDA, train a tiny run on the GPU,
# benchmark training at the paper's input (bf16, channels_last_3d), torch CUDA inference and
# ONNX Runtime (with or without TensorRT);
# where TensorRT and cuda-python are installed (pip install -e '.[trt]') also export with
# --trt and --trt --int8, check the engines' parity on real clips and benchmark them.
# Prints PASS / FAIL / SKIP per step; exit status = failures. Usage: scripts/gpu_check.sh [PYTHON]
set -u
PY=${1:-${PY:-python3}}
WORK=$(mktemp -d /tmp/prp-gpu-check.XXXXXX)
export PRP_DEPLOY_CACHE="$WORK/cache"
FAILS=0
step() {
  local name=$1; shift
  local t0=$(date +%s)
  if timeout 300 "$@" >"$WORK/$name.log" 2>&1; then
    echo "PASS $name ($(( $(date +%s) - t0 )) s)"
  else
    echo "FAIL $name ($(( $(date +%s) - t0 )) s), last lines of $WORK/$name.log:"
    tail -n 8 "$WORK/$name.log" | sed 's/^/    /'
    FAILS=$((FAILS + 1))
  fi
}
# TensorRT is there when the import succeeds (its exit status, not what it prints: a warning
# on stderr is not a missing package); the reason is kept for the SKIP lines.
if "$PY" -c "import tensorrt; from cuda.bindings import runtime" >"$WORK/trt_import.log" 2>&1; then
  TRT_REASON=""
else
  TRT_REASON=$(tail -n 1 "$WORK/trt_import.log"); TRT_REASON=${TRT_REASON:-import failed}
fi
trt_step() {  # a TensorRT step: SKIP with the reason where TensorRT or cuda-python is missing
  if [ -n "$TRT_REASON" ]; then echo "SKIP $1 (TensorRT unavailable: $TRT_REASON)"; else step "$@"; fi
}
step environment "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(), 'torch', torch.__version__)"
step train "$PY" -m prp_deploy train --out "$WORK/run" --pretrain-epochs 1 --finetune-epochs 1 --device cuda
step bench_train "$PY" benchmarks/bench_train.py --device cuda --backbone r21d --frames 16 --crop 112 --batch 32 --steps 20
step export_onnx "$PY" -m prp_deploy export "$WORK/run" --fp16 --int8
step bench_torch_cuda "$PY" -c "
import time, torch
from prp_deploy.models import ActionRecognizer, EncoderConfig, build_encoder
m = ActionRecognizer(build_encoder(EncoderConfig('r21d', 10, 1.0)), 101).cuda().eval().to(memory_format=torch.channels_last_3d)
for b in (1, 8, 32):
    x = torch.rand(b, 3, 16, 112, 112, device='cuda').contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
        for _ in range(5): m(x)
        torch.cuda.synchronize(); t0 = time.perf_counter()
        for _ in range(20): m(x)
        torch.cuda.synchronize()
    print(f'torch cuda bf16 r21d-10 16x112^2 batch {b}: {20 * b / (time.perf_counter() - t0):.1f} clips/s')"
# ONNX Runtime on this machine (onnxruntime-gpu where installed), with or without TensorRT.
step bench_onnxruntime "$PY" -m prp_deploy bench --model "$WORK/run/export" --backends onnxruntime,onnxruntime-fp16,onnxruntime-int8,torch --batch 1,8,32 --json "$WORK/bench_ort.json"
step bench_paper_input_onnxruntime "$PY" -m prp_deploy bench --backbone r21d --batch 1,8 --iters 10 --backends onnxruntime,onnxruntime-int8,torch
trt_step export_trt "$PY" -m prp_deploy export "$WORK/run" --trt --int8 --triton --batch 1:8:32
trt_step engine_parity "$PY" -c "
import json, sys
r = json.load(open('$WORK/run/export/parity.json'))
plans = [c for c in r['checks'] if c['artifact'].endswith('.plan') and c['inputs'] != 'random']
print(json.dumps({c['artifact'] + ' ' + c['output']: c['stats'] for c in plans}, indent=1))
declined = r.get('declined', {}).get('model_int8.plan')  # the INT8 rule's answer, not a failure: said, FP16 serves
if declined: print('model_int8.plan declined:', declined)
sys.exit(0 if r['passed'] and r['artifacts'].get('model.plan') and (r['artifacts'].get('model_int8.plan') or declined) else 1)"
trt_step engine_reload "$PY" -c "
from prp_deploy.runtime.backends import TensorRTBackend
import numpy as np
import os
for plan in [p for p in ('model.plan', 'model_int8.plan') if os.path.exists('$WORK/run/export/' + p)]:  # model_int8.plan: unless declined
    b = TensorRTBackend('$WORK/run/export/' + plan)
    for n in sorted({1, max(1, b.min_batch - 1), b.min_batch, 3, b.max_batch}):  # under, at and over the profile's minimum
        out = b.run(np.zeros((n, *b.clip_shape), np.float32))
        assert out['logits'].shape[0] == n and out['features'].shape[0] == n, (plan, n, {k: v.shape for k, v in out.items()})
    print(plan, 'batches ok up to', b.max_batch)"
trt_step run_tensorrt bash -c "'$PY' -m prp_deploy data synth '$WORK/videos' --groups 1 --clips-per-group 1 --seed 5 && \
  '$PY' -m prp_deploy run '$WORK/videos/UCF-101/Orbit/v_Orbit_g01_c01.avi' --model '$WORK/run/export' --backend tensorrt --out '$WORK/trt.jsonl' && \
  { [ ! -e '$WORK/run/export/model_int8.plan' ] || \
  '$PY' -m prp_deploy run '$WORK/videos/UCF-101/Orbit/v_Orbit_g01_c01.avi' --model '$WORK/run/export' --backend tensorrt --precision int8 --out '$WORK/trt8.jsonl'; }"
trt_step bench_inference "$PY" -m prp_deploy bench --model "$WORK/run/export" --batch 1,8,32 --json "$WORK/bench.json"
trt_step bench_paper_input "$PY" -m prp_deploy bench --backbone r21d --batch 1,8 --iters 10
cat "$WORK"/bench_*.log 2>/dev/null
echo "gpu_check: $FAILS failed step(s); logs in $WORK"
exit $FAILS
