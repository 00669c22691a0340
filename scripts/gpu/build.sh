#!/usr/bin/env bash
# Builds the CUDA binaries for scripts/gpu/check.sh on a machine WITHOUT a GPU or CUDA toolkit
# (the GPU machine has no Rust, this one has no CUDA): nvcc 13.0 from PyPI wheels (matching the
# GPU machine's driver, CUDA 13.0), link-time stand-ins for the CUDA libraries (the real ones
# are loaded on the GPU machine by soname), and candle-kernels built for sm_90 with its
# statically linked MoE/MMQ kernels (unused by srlm: weights are dequantized) replaced by stubs
# that abort. On a machine with a CUDA toolkit none of this is needed:
#   cargo build --release --features cuda
# Output: .gpu/bin.tar.xz (srlm + cuda_parity) and .gpu/build_root, for check.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TK=${SRLM_CUDA_TK:-$HOME/.cache/srlm-cuda-tk}
mkdir -p "$TK/whl" "$TK/x" "$TK/stubs"
if [ ! -x "$TK/x/nvidia/cu13/bin/nvcc" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$TK/whl" 'nvidia-cuda-nvcc==13.0.*' 'nvidia-cuda-runtime==13.0.*' 'nvidia-cuda-crt==13.0.*' \
    'nvidia-nvvm==13.0.*' 'nvidia-cuda-cccl==13.0.*'
  for w in "$TK"/whl/*.whl; do unzip -q -o "$w" -d "$TK/x"; done
  chmod +x "$TK"/x/nvidia/cu13/bin/* "$TK"/x/nvidia/cu13/nvvm/bin/*
fi
CUDA_HOME="$TK/x/nvidia/cu13"
# Link-time stand-ins with the real sonames, defining every CUDA symbol cudarc references; on the
# GPU machine the real libraries (same sonames) are loaded instead. Symbols come from cudarc's
# compiled rlib, so the first build (which fails to link) is run to produce it.
stubs() {
  local rlib; rlib=$(ls -t target/release/deps/libcudarc-*.rlib 2>/dev/null | head -1 || true)
  python3 - "$rlib" "$TK/stubs" <<'PY'
import subprocess, sys
rlib, out = sys.argv[1], sys.argv[2]
syms = set()
if rlib:
    nm = subprocess.run(["nm", "-u", "--format=just-symbols", rlib], capture_output=True, text=True).stdout
    syms = {s for s in nm.split() if s.startswith(("cu", "nvrtc"))}
groups = {"cuda": [], "nvrtc": [], "curand": [], "cublas": [], "cublasLt": []}
for s in sorted(syms):
    key = next((k for k in ("cublasLt", "cublas", "curand", "nvrtc") if s.startswith(k)), "cuda")
    groups[key].append(s)
for name, names in groups.items():
    open(f"{out}/{name}.c", "w").write("".join(f"void {n}(void) {{}}\n" for n in names))
PY
  for l in cuda:libcuda.so.1 nvrtc:libnvrtc.so.13 curand:libcurand.so.10 cublas:libcublas.so.13 cublasLt:libcublasLt.so.13; do
    gcc -shared -fPIC "$TK/stubs/${l%%:*}.c" -o "$CUDA_HOME/lib/lib${l%%:*}.so" -Wl,-soname,"${l#*:}"
  done
  ln -sf libcudart.so.13 "$CUDA_HOME/lib/libcudart.so"
}
# candle-kernels with a build script that needs only nvcc (PTX) and gcc (stubs).
CK="$TK/candle-kernels"
if [ ! -f "$CK/moe_stub.c" ]; then
  # The cuda feature's crates are in Cargo.lock but not downloaded by a CPU build.
  (cd "$ROOT" && cargo fetch -q)
  rm -rf "$CK"; cp -a "$(ls -d "$HOME"/.cargo/registry/src/*/candle-kernels-0.11.1 | head -1)" "$CK"
  python3 "$ROOT/scripts/gpu/patch_candle_kernels.py" "$CK"
fi
export CUDA_HOME PATH="$CUDA_HOME/bin:$PATH" CUDA_COMPUTE_CAP=90
cd "$ROOT"
# The candle-kernels patch rewrites Cargo.lock; the repository's lock file stays as committed.
cp Cargo.lock "$TK/Cargo.lock.committed"
trap 'cp "$TK/Cargo.lock.committed" "$ROOT/Cargo.lock"' EXIT
PATCH=(--config "patch.crates-io.candle-kernels.path=\"$CK\"")
stubs
cargo build --release --features cuda "${PATCH[@]}" || { stubs; cargo build --release --features cuda "${PATCH[@]}"; }
TEST=$(cargo test --release --features cuda "${PATCH[@]}" --test cuda_parity --no-run --message-format=json \
  | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "cuda_parity"][-1])')
mkdir -p .gpu && cp target/release/srlm .gpu/srlm && cp "$TEST" .gpu/cuda_parity && strip .gpu/srlm .gpu/cuda_parity
tar cJf .gpu/bin.tar.xz -C .gpu srlm cuda_parity && rm .gpu/srlm .gpu/cuda_parity
echo "$ROOT" > .gpu/build_root
ls -la .gpu
