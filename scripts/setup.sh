#!/usr/bin/env bash
# One-time set-up of a fresh Debian/Ubuntu machine that has the Rust toolchain:
# the system packages QSync's build and tests need, and (unless --no-just) the `just` runner.
#   libclang-dev, clang : bindgen, used by the xdelta3 crate's build script
#   xdelta3             : the tests check that our deltas apply with the reference decoder
#   rsync, syncthing    : the benchmarks measure against them
#   iproute2            : multi-host tests in network namespaces (ip netns)
# Idempotent and quick when everything is already there.
set -euo pipefail

packages=(libclang-dev clang xdelta3 rsync syncthing iproute2 pkg-config)
install_just=1
for arg in "$@"; do
  case "$arg" in
    --no-just) install_just=0 ;;
    *) echo "usage: $0 [--no-just]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$install_just" = 1 ] && ! command -v just >/dev/null; then
  echo "setup: installing just (cargo install just)"
  cargo install --locked just
fi
