#!/bin/sh
# Rebuilds p_click.onnx, the retail example's click model, from a simulated clickstream.
#
#   sh rulesets/retail/models/rebuild.sh
#
# The model predicts whether a visitor clicks the accessories banner (content id acc-42)
# within 30 minutes of seeing it, from the features listed in p_click.features.
# Simulation and training are seeded: the same versions of tailor, LightGBM and
# onnxmltools rebuild the same model; set SOURCE_DATE_EPOCH to fix tailor.trained_at
# too and get a byte-identical file. See docs/models.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
tailor simulate --users 3000 --days 28 --seed 7 --out events.jsonl
tailor train --events events.jsonl --label click --target acc-42 \
    --features "$here/p_click.features" --out "$here/p_click.onnx" --seed 7
