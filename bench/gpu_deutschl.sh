#!/usr/bin/env bash
# The Transformer issue's GPU figures, in one run on a CUDA machine (written for one H200):
#
#   bash bench/gpu_deutschl.sh                 # MINUTES=3 per model: about 12 minutes in all
#   MINUTES=10 bash bench/gpu_deutschl.sh      # the issue's budget: 10 minutes of training each
#
# Before a GPU session, a smoke run of every step on the CPU with a few songs (about 2 minutes;
# run it in a scratch clone: it writes data/deutschl and runs/deutschl-*):
#
#   DEVICE=cpu MINUTES=0.1 DEUTSCHL=<a folder of ~20 .krn> OUT=/tmp/gpu-smoke \
#     bash bench/gpu_deutschl.sh
#
# 1. preprocess all of deutschl (DEUTSCHL, default ../shared/deutschl, else shared/deutschl);
# 2. train, on the same song split (train.py's --seed 42), an LSTM 512x2 and a Transformer
#    (6 layers, width 256, 8 heads, each with its own keys and values: the plain recipe of
#    ../shared/notes/measurements.md, with rotary positions and a context of 1,280 steps, longer
#    than the longest song), each for up to MINUTES minutes of training (--max-minutes);
# 3. evaluate both in one report (evaluate.py --model lstm --model transformer);
# 4. time one torchrun run (DistributedDataParallel, nccl) of the Transformer: --nproc_per_node
#    NPROC (default: the GPUs torch sees);
# 5. sampling speed per architecture on this machine's CPU (bench/run.py --sampling-only).
#
# Everything goes to $OUT (default bench/results/gpu-<date>/): each command's log, its wall time
# (summary.txt) and the models' training logs and evaluation report. Nothing here downloads
# anything. DEUTSCHL and OUT given relative are read from the folder the script is run from.
set -euo pipefail
[ -z "${DEUTSCHL:-}" ] || DEUTSCHL=$(realpath -m "$DEUTSCHL")
[ -z "${OUT:-}" ] || OUT=$(realpath -m "$OUT")
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-3}
if [ -z "${DEUTSCHL:-}" ]; then  # unset: beside the repo, else in it
  DEUTSCHL=../shared/deutschl
  [ -d "$DEUTSCHL" ] || DEUTSCHL=shared/deutschl
fi
[ -d "$DEUTSCHL" ] || { echo "DEUTSCHL=$DEUTSCHL: no such folder of .krn songs" >&2; exit 1; }
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-bench/results/gpu-$(date +%F)}
NPROC=${NPROC:-$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"

step() {  # step NAME COMMAND...: run it, log it, record its wall time
  local name=$1
  shift
  echo "== $name: $*" | tee -a "$SUMMARY"
  local start=$SECONDS
  if ! "$@" >"$OUT/$name.log" 2>&1; then
    echo "$name failed: see $OUT/$name.log" | tee -a "$SUMMARY"
    tail -5 "$OUT/$name.log"
    exit 1
  fi
  echo "   $((SECONDS - start)) s" | tee -a "$SUMMARY"
  grep -E "^(best epoch|training on|wrote)" "$OUT/$name.log" | tee -a "$SUMMARY" || true
}

python -c "import torch; print(torch.__version__, torch.cuda.is_available() and
  torch.cuda.get_device_name(0))" | tee -a "$SUMMARY"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$SUMMARY" || true

step preprocess python preprocess.py --dataset "$DEUTSCHL" --name deutschl
step lstm python train.py --data deutschl --arch lstm --units 512 512 --dropout 0.3 \
  --epochs 200 --lr 0.002 --min-lr 0.0002 --device "$DEVICE" --max-minutes "$MINUTES" \
  --out-dir runs/deutschl-lstm
step transformer python train.py --data deutschl --arch transformer --layers 6 --width 256 \
  --heads 8 --kv-heads 8 --context 1280 --dropout 0.2 --batch-size 32 --lr 0.0006 \
  --min-lr 0.00006 --warmup 300 --weight-decay 0.1 --epochs 200 --device "$DEVICE" \
  --max-minutes "$MINUTES" \
  --out-dir runs/deutschl-transformer
step evaluate python evaluate.py --model runs/deutschl-lstm/model.pth \
  --model runs/deutschl-transformer/model.pth --device "$DEVICE" --out "$OUT/evaluation"
# torchrun takes `--log` for an abbreviation of its own --log-dir: name the run's folder instead
step torchrun torchrun --standalone --nproc_per_node="$NPROC" train.py --data deutschl \
  --arch transformer --layers 6 --width 256 --heads 8 --kv-heads 8 --context 1280 --dropout 0.2 \
  --batch-size 32 --lr 0.0006 --warmup 300 --epochs 5 --device "$DEVICE" \
  --out-dir runs/deutschl-torchrun
step sampling python bench/run.py --sampling-only --data data/deutschl --out "$OUT"

for run in lstm transformer torchrun; do
  cp "runs/deutschl-$run/training_log.csv" "$OUT/$run-training_log.csv"
done
python - "$OUT" <<'EOF' | tee -a "$SUMMARY"
import csv, sys
for run in ("lstm", "transformer", "torchrun"):
    rows = list(csv.DictReader(open(f"{sys.argv[1]}/{run}-training_log.csv")))
    best = min(rows, key=lambda r: float(r["val_loss"]))
    print(f"{run}: best held-out NLL {float(best['val_loss']):.4f} at epoch {best['epoch']} "
          f"({float(best['elapsed_seconds']):.0f} s of training; {len(rows)} epochs, "
          f"{float(rows[-1]['elapsed_seconds']):.0f} s)")
EOF
echo "wrote $OUT"
