#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the GPU tests, then the pipeline benchmark at the batch
# sizes BENCHMARKS.md reports, each printing one JSON line (provider, cuda_graph, stage_busy,
# batch_fill, fps, ratio). Needs onnxruntime-gpu with CUDA 13 and cuDNN 9, and Debian's ffmpeg
# for the generated flight (or pass a video: scripts/gpu_check.sh FLIGHT.mp4). A minute of
# 1080p30, so that the pipeline's start-up (first_frame_s: opening the video, the decoder's first
# frame) weighs on its frames/s as little as on a real flight's.
set -euo pipefail
cd "$(dirname "$0")/.."
input=()
if [ $# -ge 1 ]; then input=(--input "$1"); fi

python - <<'EOF'
import onnxruntime as ort
print("onnxruntime", ort.__version__, "providers", ort.get_available_providers())
EOF
QT_QPA_PLATFORM=offscreen python -m pytest -q -m gpu tests/core/scoring/test_gpu.py
for batch in 32 128; do
  python -m triage_app.cli bench pipeline --json --seconds 60 --sample-fps 0 --device cuda --batch "$batch" ${input[@]+"${input[@]}"}
done
python -m triage_app.cli bench pipeline --json --seconds 60 --sample-fps 0 --device cuda --batch 32 --precision fp32 ${input[@]+"${input[@]}"}
