#!/usr/bin/env bash
# The one script to run on a lent GPU machine (bench/README.md, "GPU session", has the local build,
# bundle and `run` commands). From the repository root there:
#
#   bash bench/gpu_session.sh [--dry-run] [STAGE...]      stages: env tests kernels e2e
#
#   env      nvidia-smi, the unpacked bundle's library resolution, the Python packages (always
#            runs first)
#   tests    every GPU test binary (test_cuda_*, test_nccl_communicator) with --gtest_brief=1
#   kernels  bench/run_kernel_bench.py: bench_kernels against PyTorch on the same shapes
#   e2e      bench/run_e2e_gpu.py: bench_step --device cuda against PyTorch + PEFT, per method
#
# With no stage it runs "tests kernels" (about 8 minutes at most); run "e2e" in a second call
# (about 9 minutes at most): each stage has a time budget (TESTS_BUDGET, KERNELS_BUDGET,
# E2E_BUDGET seconds) so one call stays inside the tool's 10-minute limit; a process that would
# start with under 30 s left is skipped and reported. E2E_METHODS picks the methods (default
# full,prompt_tuning,prefix_tuning,lora) for a later call to finish what a budget cut off. Single
# process throughout: the bundle carries no Open MPI plugins, so nothing here uses mpirun.
#
# Input: build-gpu-bundle/ (FT_BUNDLE_DIR) with ft.tar.xz (/work/shared/tools/bundle output),
# ft_commit.txt and source_dir.txt (the source path the tests were compiled with). Output, under
# $OUT (at most 8 files come back): session.log (everything), tests.txt, kernel_bench.md, e2e.md,
# details.tar.gz (every per-process log, the JSON rows and results).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bundle_dir=${FT_BUNDLE_DIR:-$root/build-gpu-bundle}
out=${OUT:-$root/gpu_session_out}
work=${FT_SESSION_WORK:-/tmp/ft_session}
prefix=${FT_PREFIX:-/tmp/ft}
python=${PYTHON:-python3}
tests_budget=${TESTS_BUDGET:-150}
kernels_budget=${KERNELS_BUDGET:-300}
e2e_budget=${E2E_BUDGET:-520}
e2e_methods=${E2E_METHODS:-full,prompt_tuning,prefix_tuning,lora}

dry_run=0
stages=()
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=1 ;;
    env | tests | kernels | e2e) stages+=("$arg") ;;
    all) stages+=(tests kernels e2e) ;;
    *) echo "gpu_session: unknown argument '$arg' (stages: env tests kernels e2e; --dry-run)" >&2
       exit 2 ;;
  esac
done
[ ${#stages[@]} -eq 0 ] && stages=(tests kernels)

mkdir -p "$out" "$work"
exec > >(tee -a "$out/session.log") 2>&1
started=$(date +%s)
say() { echo "gpu_session [$(( $(date +%s) - started ))s]: $*"; }
run() {  # prints the command; runs it unless --dry-run
  echo "+ $*"
  [ $dry_run -eq 1 ] || "$@"
}

commit=$(cat "$bundle_dir/ft_commit.txt" 2>/dev/null || echo unknown)
say "stages: ${stages[*]}; ft commit $commit; bundle $bundle_dir; output $out"

# ---- env: unpack, libraries, device ------------------------------------------------------------
if [ ! -f "$bundle_dir/ft.tar.xz" ]; then
  say "no $bundle_dir/ft.tar.xz: build and bundle first (bench/README.md, GPU session)"
  exit 1
fi
mkdir -p "$prefix"
tar -xJf "$bundle_dir/ft.tar.xz" -C "$prefix" || { say "cannot unpack the bundle"; exit 1; }
export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The CUDA toolkit's libraries (cudart, cuBLAS(Lt), NCCL) are left out of the bundle: take the
# machine's toolkit, then the NVIDIA wheels PyTorch brings for anything still missing.
for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$dir" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$dir"
done
missing() { ldd "$prefix"/bin/* 2>/dev/null | awk '/not found/ {print $1}' | sort -u; }
if [ -n "$(missing)" ]; then
  wheels=$("$python" -c 'import glob, os, site
dirs = sorted({d for s in site.getsitepackages() for d in glob.glob(os.path.join(s, "nvidia", "*", "lib"))})
print(":".join(dirs))' 2>/dev/null)
  [ -n "$wheels" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$wheels"
fi
say "still unresolved shared libraries: $(missing | tr '\n' ' ')"
# tests/support/training_run.h reads examples/ under the source path the tests were built with.
source_dir=$(cat "$bundle_dir/source_dir.txt" 2>/dev/null || echo /work/main)
if [ ! -e "$source_dir" ]; then
  mkdir -p "$(dirname "$source_dir")" && ln -s "$root" "$source_dir"
  say "linked $source_dir -> $root (the tests' FT_SOURCE_DIR)"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.max.sm,power.limit \
  --format=csv || say "nvidia-smi failed"
"$python" -c 'import torch, transformers, peft
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(),
      "| transformers", transformers.__version__, "| peft", peft.__version__,
      "| GPU", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")' ||
  say "the Python packages are not all importable"

# ---- tests -------------------------------------------------------------------------------------
run_tests() {
  local summary="$out/tests.txt" deadline=$(( $(date +%s) + tests_budget )) failed=0
  : >"$summary"
  mkdir -p "$work/tests"
  for test in "$prefix"/bin/test_cuda_* "$prefix"/bin/test_nccl_communicator; do
    [ -x "$test" ] || continue
    local name left
    name=$(basename "$test")
    left=$(( deadline - $(date +%s) ))
    if [ $left -lt 10 ]; then
      echo "$name: not run (tests budget of ${tests_budget}s spent)" | tee -a "$summary"
      failed=1
      continue
    fi
    say "test $name (at most ${left}s)"
    if [ $dry_run -eq 1 ]; then
      echo "+ OMP_NUM_THREADS=2 timeout $left $test --gtest_brief=1"
      continue
    fi
    OMP_NUM_THREADS=2 timeout "$left" "$test" --gtest_brief=1 >"$work/tests/$name.log" 2>&1
    local status=$?
    tail -n 25 "$work/tests/$name.log"
    local line
    line=$(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$work/tests/$name.log" | tr '\n' ' ')
    echo "$name: exit $status; $line" | tee -a "$summary"
    [ $status -eq 0 ] || failed=1
  done
  say "tests done (failures: $failed); summary in tests.txt"
}

# ---- kernels and e2e ---------------------------------------------------------------------------
run_kernels() {
  run "$python" "$root/bench/run_kernel_bench.py" --bench-kernels "$prefix/bin/bench_kernels" \
    --python "$python" --out "$work/kernels" --ft-commit "$commit" \
    --budget "$kernels_budget" --timeout $(( kernels_budget * 6 / 10 ))
  [ -f "$work/kernels/kernel_bench.md" ] && cp "$work/kernels/kernel_bench.md" "$out/"
}

run_e2e() {
  run "$python" "$root/bench/run_e2e_gpu.py" --bench-step "$prefix/bin/bench_step" \
    --python "$python" --out "$work/e2e" --ft-commit "$commit" --budget "$e2e_budget" \
    --timeout 150 --methods "$e2e_methods"
  [ -f "$work/e2e/e2e.md" ] && cp "$work/e2e/e2e.md" "$out/"
}

export PYTHONUNBUFFERED=1
for stage in "${stages[@]}"; do
  case $stage in
    env) ;;
    tests) run_tests ;;
    kernels) run_kernels ;;
    e2e) run_e2e ;;
  esac
done

tar -czf "$out/details.tar.gz" -C "$work" . 2>/dev/null
say "done; files in $out: $(ls "$out" | tr '\n' ' ')"
# The reply shows the end of the output: the short tables last.
[ -f "$out/tests.txt" ] && cat "$out/tests.txt"
[ -f "$out/e2e.md" ] && cat "$out/e2e.md"
exit 0
