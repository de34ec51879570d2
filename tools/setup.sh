#!/usr/bin/env bash
# Installs ft's system dependencies (Debian packages) and builds ft into build/.
#   bash tools/setup.sh            # Release build; CUDA sources compiled when nvcc is present
#   FT_BUILD_DIR=out FT_CUDA=OFF bash tools/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
  libprotobuf-dev protobuf-compiler
  libopenblas-openmp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir=${FT_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFT_CUDA="${FT_CUDA:-AUTO}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
echo "setup: built ft in $build_dir/ (ft_train: $build_dir/bin/ft_train)"
