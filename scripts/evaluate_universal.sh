#!/usr/bin/env bash
# A candidate for the shipped `universal` model, measured as the README's in-domain table measures the shipped one:
# each dataset's test split as it runs (`m2unet evaluate --weights`), with flip TTA (--tta), with the diameter search
# (--search-diameter) and with both (what `--model auto` runs), into results/ours/NAME, NAME-tta, NAME-search and
# NAME-search-tta.
# Skips what is already there and newer than the weights, so a killed run continues.
#
#   scripts/evaluate_universal.sh runs/universal-ema/best.safetensors universal-ema
#
# Environment: M2UNET (the command; default m2unet), DATASETS (default "drive chase_db1 hrf").
set -euo pipefail
if [ $# -ne 2 ] || [ ! -f "$1" ]; then
  echo "usage: $0 WEIGHTS.safetensors NAME   (weights: a file that exists)" >&2
  exit 2
fi
weights=$1
name=$2
M2UNET=${M2UNET:-m2unet}
read -r -a datasets <<< "${DATASETS:-drive chase_db1 hrf}"
# each way of running: folder suffix, evaluate flag, label suffix
for way in "||" "-tta|--tta| + TTA" "-search|--search-diameter|, diameter searched" \
           "-search-tta|--search-diameter --tta|, diameter searched + TTA"; do
  IFS='|' read -r suffix flag_words what <<< "$way"
  read -r -a flags <<< "$flag_words"
  for dataset in "${datasets[@]}"; do
    out="results/ours/$name$suffix/$dataset"
    if [ -f "$out/metrics.json" ] && [ "$out/metrics.json" -nt "$weights" ]; then
      continue
    fi
    "$M2UNET" evaluate --dataset "$dataset" --weights "$weights" --out "$out" --no-maps --overwrite --label "$name$what" "${flags[@]}"
  done
done
