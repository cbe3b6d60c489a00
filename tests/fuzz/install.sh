#!/usr/bin/env bash
# Installs what fuzzing sparsa needs on Debian/Ubuntu; idempotent.
#   a C/C++ toolchain (libFuzzer is compiled from source by libfuzzer-sys),
#   rustup with a nightly toolchain (sanitizer flags are nightly-only),
#   cargo-fuzz, and sox (to make seed audio).
# Usage: bash tests/fuzz/install.sh
set -euo pipefail

packages=(build-essential pkg-config libasound2-dev sox ca-certificates curl)
bash "$(dirname "$0")/../scripts/apt-install.sh" "${packages[@]}"

# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && source "$HOME/.cargo/env"
if ! command -v rustup >/dev/null 2>&1; then
  echo "fuzz-install: installing rustup (stable + nightly)" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz-install: installing the nightly toolchain" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-install: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
echo "fuzz-install: $(rustup run nightly rustc --version); $(cargo fuzz --version)" >&2
