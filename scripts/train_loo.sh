#!/usr/bin/env bash
# Leave one dataset out (issue #16): for each of DRIVE, CHASE_DB1 and HRF, train one scale-normalised model on the other
# two (`m2unet train --dataset A,B`, the MULTI preset: FOV 1024 px, 150 epochs, threshold chosen on held-out training
# images of A and B), evaluate it on the held-out dataset's test split (as stored, diameter searched, searched with
# flip TTA: results/ours/loo/<held-out>[-VARIANT][-search[-tta]]), then regenerate results/scale/loo.md.
# About 50 min per run on a quiet 2-core CPU. A killed run continues where it stopped (rerun the script: it resumes from
# checkpoints/last.ckpt, skips finished runs and reevaluates only what is missing). TRAIN_ARGS may hold a --time-limit:
# a run it stops is left unevaluated until a later call finishes it.
#
#   scripts/train_loo.sh                 # all three, in the order given below
#   scripts/train_loo.sh hrf drive       # only these held-out datasets
#   VARIANT=w6 TRAIN_ARGS="--vessel-width 6" scripts/train_loo.sh   # a recipe variant: RUNS/loo-<held-out>-w6,
#                                        # results/ours/loo/<held-out>-w6 (a second table in loo.md)
#   PYTHON=.venv/bin/python M2UNET=.venv/bin/m2unet VARIANT=poolz20-s1 TRAIN_ARGS="--augment jpeg_quality_min=15 \
#     --augment blur_sigma_max=3 --augment scale_high=2.0 --augment scale_p=0.7 --ema-half-life 5 --epochs 300 \
#     --pool-coarse-labels --seed 1 --no-test" scripts/train_loo.sh hrf   # poolz20's recipe with HRF left out (issue #16)
#
# Environment: RUNS (run folders; default runs), M2UNET (the command; default m2unet), PYTHON (default python: one
# that imports m2unet), VARIANT and TRAIN_ARGS (above).
# The run's records (config, summary, metrics, curves) are copied to results/train/loo-<held-out>[-VARIANT].
set -euo pipefail
RUNS=${RUNS:-runs}
M2UNET=${M2UNET:-m2unet}
suffix=${VARIANT:+-$VARIANT}
read -r -a train_args <<< "${TRAIN_ARGS:-}"
declare -A NAME=([drive]=DRIVE [chase_db1]=CHASE_DB1 [hrf]=HRF)
# A run is finished when its summary says so: one stopped by --time-limit writes a summary too.
finished() {
  [ -f "$1/summary.json" ] && "${PYTHON:-python}" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["stopped_by_time_limit"])' "$1/summary.json"
}
held_outs=("$@")
[ ${#held_outs[@]} -eq 0 ] && held_outs=(hrf drive chase_db1)
for held_out in "${held_outs[@]}"; do
  others=()
  for d in drive chase_db1 hrf; do [ "$d" != "$held_out" ] && others+=("$d"); done
  run="$RUNS/loo-$held_out$suffix"
  if ! finished "$run"; then
    resume=()
    [ -f "$run/checkpoints/last.ckpt" ] && resume=(--resume)
    "$M2UNET" train --dataset "${others[0]},${others[1]}" --out "$run" "${train_args[@]}" "${resume[@]}"
    if ! finished "$run"; then
      # stopped by a --time-limit in TRAIN_ARGS: its best weights are not the run's, so nothing is evaluated yet
      echo "$run stopped before its last epoch; rerun the script to continue it" >&2
      continue
    fi
  fi
  records="results/train/loo-$held_out$suffix"
  mkdir -p "$records"
  cp "$run"/{config.json,summary.json,metrics.csv,curves.png,augmentations.jpg} "$records"/
  label="trained on ${NAME[${others[0]}]} + ${NAME[${others[1]}]} (leave ${NAME[$held_out]} out)${VARIANT:+, variant $VARIANT}"
  # as stored, then as `--model auto` runs it (diameter searched), then with `segment --tta` on top: loo.md's columns
  for way in "" -search -search-tta; do
    out="results/ours/loo/$held_out$suffix$way"
    if [ ! -f "$out/metrics.json" ] || [ "$run/best.safetensors" -nt "$out/metrics.json" ]; then
      way_args=()
      [ -n "$way" ] && way_args+=(--search-diameter)
      [ "$way" = -search-tta ] && way_args+=(--tta)
      "$M2UNET" evaluate --dataset "$held_out" --weights "$run/best.safetensors" --out "$out" --no-maps --overwrite \
        --label "$label${way:+, ${way#-}}" "${way_args[@]}"
    fi
  done
done
"${PYTHON:-python}" benchmarks/loo_table.py
