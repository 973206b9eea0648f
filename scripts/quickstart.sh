#!/usr/bin/env bash
# Sets up (Debian packages), builds, and trains the default model on Fashion-MNIST
# (configs/quickstart.json), printing the test accuracy and the path of the results JSON.
# Arguments go to vit_train, e.g. --set train.epochs=1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
out=${VITLAB_OUT:-runs/quickstart-$(date +%Y%m%d-%H%M%S)}
./build/apps/vit_train --config configs/quickstart.json --out "$out" "$@"
