#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages given that are missing (apt-get, with
# sudo only when not root); quiet when all are there. Sourced or run:
#   bash tests/scripts/apt-install.sh nginx haproxy
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "apt-install: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
