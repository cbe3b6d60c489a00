#!/usr/bin/env bash
# sparsa's scorer against ONNX Runtime on the same network (issue #22): the
# `relu` model's 440-4x512-120 ReLU network, its weights read from am.ron,
# as an f32 ONNX graph and its quantize_dynamic int8 version, one thread, at
# batch 1, 8, 32 and 64. Rounds alternate `sparsa bench --rounds 1` with one
# round of ONNX Runtime, so a drift of the machine's speed touches both; each
# figure is the median over rounds of the thread's CPU µs per frame (what
# `sparsa bench` reports). ONNX Runtime's Python call overhead, measured with
# a width-1 graph at each batch, is subtracted. Prints one Markdown table.
#
# Usage, from anywhere (build first; not part of CI):
#   cargo build --release --bin sparsa && bash benches/onnx/compare.sh
# Settings (environment): ROUNDS (default 7), FRAMES per round (3000),
# BLOCKS (8,32,64), KERNELS (default: every family the CPU runs but portable),
# MODEL (models/relu), SPARSA (target/release/sparsa).
# The first run makes a venv at target/onnx-venv with pinned onnxruntime,
# onnx and numpy from PyPI (Python >= 3.11 with venv; x86-64 wheels).
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds="${ROUNDS:-7}"
frames="${FRAMES:-3000}"
blocks="${BLOCKS:-8,32,64}"
model="${MODEL:-models/relu}"
sparsa="${SPARSA:-target/release/sparsa}"
pins="onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6"
venv=target/onnx-venv
py="$venv/bin/python"
work=target/onnx

if [ ! -x "$sparsa" ]; then
  echo "compare.sh: no $sparsa; build it first: cargo build --release --bin sparsa" >&2
  exit 2
fi

# The venv, made once; remade when the pins change.
if [ "$(cat "$venv/pins" 2>/dev/null)" != "$pins" ]; then
  command -v python3 >/dev/null || { echo "compare.sh: needs python3 (apt-get install python3 python3-venv)" >&2; exit 2; }
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    echo "compare.sh: python3 -m venv failed; install python3-venv (apt-get install python3-venv)" >&2
    exit 2
  fi
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
  echo "$pins" > "$venv/pins"
fi

# The kernel families: those `sparsa bench` says this CPU runs, but the
# portable one (its f32 calls libm's software fmaf: not a contender).
if [ -z "${KERNELS:-}" ]; then
  KERNELS=$("$sparsa" bench --model "$model" --kernels all --frames 1 --rounds 1 --block 8 2>/dev/null |
    sed -n 's/.*kernels it can run: \([^.]*\)\..*/\1/p' | tr -d ' ' | tr ',' '\n' | grep -vx portable | paste -sd,) || true
  [ -n "$KERNELS" ] || { echo "compare.sh: found no vector kernels with $sparsa bench; set KERNELS" >&2; exit 1; }
fi

mkdir -p "$work"
run="$work/run-$(date +%Y%m%d-%H%M%S)"
mkdir "$run"
"$py" benches/onnx/ort_bench.py build "$model" "$work" >&2
echo "kernels: $KERNELS; $rounds rounds of $frames frames; results in $run" >&2

for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  "$sparsa" bench --model "$model" --kernels "$KERNELS" --block "$blocks" \
    --frames "$frames" --rounds 1 > "$run/sparsa-$r.md" 2>"$run/sparsa-$r.err" ||
    { cat "$run/sparsa-$r.err" >&2; exit 1; }
  "$py" benches/onnx/ort_bench.py round "$work" "$frames" "$blocks" > "$run/ort-$r.tsv"
done

"$py" benches/onnx/ort_bench.py table "$run" "$blocks" | tee "$run/table.md"
echo "$("$sparsa" --version), tree at $(git rev-parse --short HEAD 2>/dev/null || echo "no git")" | tee -a "$run/table.md"
