#!/usr/bin/env bash
# What the benchmarks compare QSync against, from Debian's packages: rsync and Syncthing;
# xfsprogs, with which tests/reflink_xfs.rs makes an XFS file system with reflinks on a
# loop device; chromium and chromium-driver, in which tests/web_ui_chromium.rs drives the
# web UI; and tmux, in which tests/menu_tmux.rs drives the terminal menu. Building and
# testing QSync need none of this (only the Rust toolchain and a C compiler; those tests
# are skipped without them); `just bench-compare` runs this first, and CI runs it so that
# they are exercised. Idempotent and quick when all are there.
set -euo pipefail

packages=(rsync syncthing xfsprogs chromium chromium-driver tmux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bench-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
