#!/usr/bin/env bash
# Installs every vitlab dependency from Debian 12 packages. Idempotent: packages already
# installed are skipped, and nothing is downloaded when everything is present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread   # LibTorch 1.13 (CPU); OpenBLAS instead of the ~10x slower reference BLAS
  libopencv-dev                       # image-folder loader (optional at build time)
  libcli11-dev nlohmann-json3-dev libgtest-dev zlib1g-dev
  dataset-fashion-mnist               # the default dataset, /usr/share/datasets/fashion-mnist
  gnuplot-nox                         # vit_plot
  libgloo-dev                         # Gloo headers: data-parallel training on CPUs (LibTorch ships the library)
)

# --reference: also what the comparison scripts under experiments/ run (torchvision and PIL,
# the references of the data pipeline); nothing in the build or the tests needs them.
if [ "${1:-}" = "--reference" ]; then
  packages+=(python3-pil python3-torchvision python3-numpy)
fi
# --fuzz: clang 14 and its runtimes (libFuzzer, the sanitizers) for scripts/fuzz.sh.
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang-14 libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
