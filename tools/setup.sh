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
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev libicu-dev
  python3 python3-venv python3-pip
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
# Python packages of the parity tests (tokenizers, transformers, tensorboard), pinned, in a virtual
# environment of the build folder; pip runs only when one is missing or at another version.
python_env="$build_dir/python"
requirements=tools/requirements-test.txt
[ -x "$python_env/bin/python3" ] || python3 -m venv "$python_env"
if ! "$python_env/bin/python3" - "$requirements" 2>/dev/null <<'PYTHON'
import sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1]):
    name, _, pinned = line.split("#")[0].strip().partition("==")
    try:
        if name and version(name) != pinned:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PYTHON
then
  echo "setup: installing $requirements into $python_env"
  "$python_env/bin/python3" -m pip install -q --disable-pip-version-check -r "$requirements"
fi

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFT_CUDA="${FT_CUDA:-AUTO}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
echo "setup: built ft in $build_dir/ (ft_train: $build_dir/bin/ft_train)"
