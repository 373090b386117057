#!/usr/bin/env bash
# The GPU runs behind results/train/{hrf-global,erfnet-*,unet-*} (run folder names here: hrf-global-gpu, ...): one
# script, four parts, each fitting a short lease of one GPU (run on one NVIDIA H200, see those folders' config.json).
# The lease sent a copy of the repo without ../shared: DATA_ROOT pointed at a copy of the needed images (TIFFs
# recompressed losslessly with zlib + predictor, checked pixel-identical through m2unet's readers; DRIVE 23 -> 16 MB,
# so that repo + data + wheels fit the lease's 64 MiB) and M2UNET_IMAGENET_WEIGHTS at the ImageNet file; kornia came
# as wheels (pip install --no-index --no-deps --target DIR, on PYTHONPATH).
#
#   scripts/gpu_session.sh hrf     # M2U-Net on HRF at full resolution (3504x2336, batch 1) + ERFNet on CHASE_DB1
#   scripts/gpu_session.sh drive   # U-Net and ERFNet on DRIVE, U-Net evaluated on DRIVE test, `m2unet bench --device cuda`
#   scripts/gpu_session.sh unet    # U-Net alone on DRIVE (the full 300 epochs: about 4.5 min on an H200), evaluated,
#                                  # then M2U-Net's GPU latency (eager fp32 / fp16 / bf16 CUDA graphs, 3 sizes: 9 cells)
#   scripts/gpu_session.sh cuda    # only that latency and the `segment --device cuda` check (U-Net's 300 epochs were
#                                  # trained on the CPU instead: results/train/unet-drive-global); about 3 min
#   scripts/gpu_session.sh zoom15  # issue #16, five multi-dataset runs of zoom15's recipe sharing the GPU: `universal` on
#                                  # all three datasets, and seeds 1 (and 2) of the held-out runs, to measure how far the
#                                  # seed alone moves a held-out F1; held-out CHASE_DB1 evaluated there (its images are small).
#                                  # The repo had outgrown the lease's 64 MiB: results/ and the shipped .onnx files were moved
#                                  # out of the working tree for the call (HRF's JPEGs as they are, its labels as 1-bit TIFFs)
#   VARIANT=zoom20 VARIANT_ARGS="--augment scale_high=2.0" scripts/gpu_session.sh variant
#                                  # the same five runs with a change on top of zoom15's recipe, named after it
#
# Environment: DATA_ROOT (folder with DRIVE/ CHASE_DB1/ HRF/; default ../shared/datasets), OUT (where results
# go; default gpu-out), RUNS (run folders; default runs), HRF_MINUTES / BASELINE_MINUTES (--time-limit of the
# trainings: a run that does not finish stops after a validated epoch and continues with --resume).
# Trainings of one part share the GPU (they are small); the benchmark runs alone, after them.
set -uo pipefail
part=${1:?usage: scripts/gpu_session.sh hrf|drive|unet|cuda|zoom15|variant}
DATA_ROOT=${DATA_ROOT:-../shared/datasets}
OUT=${OUT:-gpu-out}
RUNS=${RUNS:-runs}
HRF_MINUTES=${HRF_MINUTES:-240}
ZOOM15_MINUTES=${ZOOM15_MINUTES:-240}
BASELINE_MINUTES=${BASELINE_MINUTES:-60}
PY=${PYTHON:-python3}
ACCELERATOR=${ACCELERATOR:-gpu}      # cpu: a smoke test of this script without a GPU
EXTRA=${EXTRA_TRAIN_ARGS:-}          # e.g. "--epochs 1 --crop 64" for that smoke test
LOGS=$RUNS/logs
mkdir -p "$OUT" "$RUNS" "$LOGS"
export PYTHONUNBUFFERED=1
started=$(date +%s)
stamp() { echo "[$(( $(date +%s) - started )) s] $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOGS/gpu.txt"
$PY -c "import torch, lightning, kornia; print('torch', torch.__version__, 'lightning', lightning.__version__, 'kornia', kornia.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$LOGS/gpu.txt"

train() {  # name, then `m2unet train` arguments
    local name=$1; shift
    $PY -m m2unet train --data-root "$DATA_ROOT" --accelerator "$ACCELERATOR" --out "$RUNS/$name" "$@" $EXTRA >"$LOGS/$name.log" 2>&1
    echo "exit $?" >>"$LOGS/$name.log"
}

collect() {  # weights files go back one by one; everything else (logs, curves, summaries, last checkpoint of M2U-Net) in one archive
    for name in "$@"; do
        # at most 16 MiB per returned file: U-Net's 124 MB weights stay (it is evaluated where it trained)
        [ -f "$RUNS/$name/best.safetensors" ] && [ "$(stat -c %s "$RUNS/$name/best.safetensors")" -lt 16000000 ] \
            && cp "$RUNS/$name/best.safetensors" "$OUT/$name.safetensors"
    done
    tar czf "$OUT/runs-$part.tgz" --exclude='*/best.safetensors' --exclude='unet-*/checkpoints' --exclude='erfnet-*/checkpoints' \
        "$LOGS" $(for n in "$@"; do [ -d "$RUNS/$n" ] && echo "$RUNS/$n"; done) $( [ -d "$RUNS/eval" ] && echo "$RUNS/eval" )
    # baselines' optimizer checkpoints are large (U-Net: 370 MB) and stay behind; M2U-Net's (7 MB) comes back for --resume
    stamp "collected: $(ls "$OUT" | tr '\n' ' ')"
}

collect_each() {  # one archive per run (its weights, records and last checkpoint: about 8 MB), then the logs
    for name in "$@"; do
        [ -d "$RUNS/$name" ] && tar czf "$OUT/$name.tgz" -C "$RUNS" "$name"
    done
    tar czf "$OUT/logs-$part.tgz" "$LOGS"
    stamp "collected: $(ls "$OUT" | tr '\n' ' ')"
}

case "$part" in
zoom15 | variant)
    # zoom15's recipe (docs/universal.md): the shipped recipe with zooms up to 1.5x on 70 % of the crops.
    # variant: the same five runs with VARIANT_ARGS on top of it, named after VARIANT (e.g. VARIANT=zoom20
    # VARIANT_ARGS="--augment scale_high=2.0"): a change to the recipe measured on all three held-out cameras and in
    # domain in one lease, seeds 1 (and 2 for CHASE_DB1, the split the change aims at) as zoom15's were.
    recipe="--augment jpeg_quality_min=15 --augment blur_sigma_max=3 --augment scale_high=1.5 --augment scale_p=0.7 --ema-half-life 5 --epochs 300"
    name=zoom15
    if [ "$part" = variant ]; then
        name=${VARIANT:?VARIANT=<name> for part variant}
        recipe="$recipe ${VARIANT_ARGS:?VARIANT_ARGS=<m2unet train arguments> for part variant}"
    fi
    run_args=(--time-limit "$ZOOM15_MINUTES" --no-test --threads 3)  # each of the five: 3 of the 16 cores
    stamp "start: five runs of $name's recipe (limit ${ZOOM15_MINUTES} min each), same GPU: $recipe"
    # shellcheck disable=SC2086
    {
        train universal-$name --dataset drive,chase_db1,hrf $recipe "${run_args[@]}" &
        train loo-chase_db1-$name-s1 --dataset drive,hrf $recipe --seed 1 "${run_args[@]}" &
        train loo-chase_db1-$name-s2 --dataset drive,hrf $recipe --seed 2 "${run_args[@]}" &
        train loo-hrf-$name-s1 --dataset drive,chase_db1 $recipe --seed 1 "${run_args[@]}" &
        train loo-drive-$name-s1 --dataset chase_db1,hrf $recipe --seed 1 "${run_args[@]}" &
        wait
    }
    stamp "trainings done"
    runs="universal-$name loo-chase_db1-$name-s1 loo-chase_db1-$name-s2 loo-hrf-$name-s1 loo-drive-$name-s1"
    for n in $runs; do tail -n 3 "$LOGS/$n.log"; done
    # shellcheck disable=SC2086
    collect_each $runs  # first, so that a lease ending during the evaluations still returns the trainings
    device=$([ "$ACCELERATOR" = gpu ] && echo cuda || echo cpu)
    for n in loo-chase_db1-$name-s1 loo-chase_db1-$name-s2; do  # held-out CHASE_DB1 as `auto` runs it (search, then flip TTA too)
        [ -f "$RUNS/$n/best.safetensors" ] || continue
        for tta in "" --tta; do
            timeout "${EVAL_SECONDS:-90}" $PY -m m2unet evaluate --dataset chase_db1 --weights "$RUNS/$n/best.safetensors" --device "$device" \
                --datasets-root "$DATA_ROOT" --search-diameter $tta --no-maps --out "$RUNS/eval/$n-search${tta:+-tta}" >"$LOGS/$n-evaluate${tta}.log" 2>&1 &
        done
    done
    wait
    stamp "evaluations done"
    [ -d "$RUNS/eval" ] && tar czf "$OUT/eval-$part.tgz" -C "$RUNS" eval
    tar czf "$OUT/logs-$part.tgz" "$LOGS"  # again, now with the evaluations' logs (collect_each's copy is the fallback)
    ;;
hrf)
    stamp "start: M2U-Net HRF full resolution (limit ${HRF_MINUTES} min) and ERFNet CHASE_DB1 (limit ${BASELINE_MINUTES} min), same GPU"
    train hrf-global-gpu --dataset hrf --time-limit "$HRF_MINUTES" --no-test &
    train erfnet-chase_db1-global --model erfnet --dataset chase_db1 --time-limit "$BASELINE_MINUTES" --no-test &
    wait
    stamp "trainings done"
    for n in hrf-global-gpu erfnet-chase_db1-global; do tail -n 4 "$LOGS/$n.log"; done
    collect hrf-global-gpu erfnet-chase_db1-global
    ;;
drive | unet | cuda)
    if [ "$part" != cuda ]; then  # cuda: no training, only the latency and `segment --device cuda` checks of #5
        if [ "$part" = drive ]; then models="unet-drive-global erfnet-drive-global"; else models="unet-drive-global"; fi
        stamp "start: $models on DRIVE (limit ${BASELINE_MINUTES} min each), same GPU"
        train unet-drive-global --model unet --dataset drive --time-limit "$BASELINE_MINUTES" --no-test &
        [ "$part" = drive ] && train erfnet-drive-global --model erfnet --dataset drive --time-limit "$BASELINE_MINUTES" --no-test &
        wait
        stamp "trainings done"
        for n in $models; do tail -n 4 "$LOGS/$n.log"; done
        # U-Net's weights (124 MB) are evaluated here, on the GPU: the same `evaluate` command as every other model
        if [ -f "$RUNS/unet-drive-global/best.safetensors" ]; then
            $PY -m m2unet evaluate --dataset drive --weights "$RUNS/unet-drive-global/best.safetensors" --device "$([ "$ACCELERATOR" = gpu ] && echo cuda || echo cpu)" --datasets-root "$DATA_ROOT" \
                --out "$RUNS/eval/unet-drive-global" --label "U-Net (ours, DRIVE, GPU)" --no-maps >"$LOGS/unet-evaluate.log" 2>&1
            echo "exit $?" >>"$LOGS/unet-evaluate.log"
            tail -n 12 "$LOGS/unet-evaluate.log"
        fi
        stamp "evaluation done"
        # shellcheck disable=SC2086
        collect $models
    fi
    stamp "bench"
    # Written straight to $OUT, cell by cell (bench.partial.json), so a lease that ends midway keeps what was measured:
    # the first lease ran out here with 18 cells (each cell is a fresh process: torch import, CUDA start, cuDNN tuning).
    if [ "$part" = drive ]; then  # latency needs no trained weights: the three architectures side by side (random init)
        set -- --arch m2unet,unet,erfnet --sizes 544x544,3504x2336 --backends cuda,cuda-bf16-graph
    else  # the shipped DRIVE model at the paper's three sizes
        set -- --sizes 544x544,960x960,3504x2336 --backends cuda,cuda-fp16-graph,cuda-bf16-graph
    fi
    $PY -m m2unet bench --device cuda "$@" -o "$OUT/bench-cuda" >"$LOGS/bench-cuda.log" 2>&1
    tail -n 25 "$LOGS/bench-cuda.log"
    if [ "$part" != drive ]; then  # `segment --device cuda` against the CPU's PyTorch fp32, then a folder on the GPU
        stamp "segment --device cuda"
        $PY -c "import sys, numpy as np, m2unet; f = sys.argv[1] + '/DRIVE/test/images/01_test.tif'; cpu = m2unet.segment(f, backend='torch')
print('segment --device cuda vs cpu, max |dp|:', *(f'{p} {float(np.abs(m2unet.segment(f, device=\"cuda\", precision=p) - cpu).max()):.2e}' for p in ('fp32', 'fp16', 'bf16')))" "$DATA_ROOT"
        $PY -m m2unet segment "$DATA_ROOT/DRIVE/test/images" -o "$RUNS/segment-cuda" --device cuda --model drive 2>&1 | tail -n 2
    fi
    ;;
*)
    echo "unknown part $part (hrf, drive, unet, cuda or zoom15)" >&2; exit 2 ;;
esac
stamp "done"
