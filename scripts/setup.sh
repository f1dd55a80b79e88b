#!/usr/bin/env bash
# Installs what ringread's tests and benchmarks need on a fresh Debian machine with a Rust toolchain:
# the peer tools the tests compare against byte for byte (sha256sum and wc come with coreutils;
# b3sum, xxhsum from Debian), setpriv for the non-root tests, fincore for the page-cache tests,
# script(1) and groff for the progress bar's terminal test and the man page's, GNU time for the
# memory tests, and
# fio/hyperfine/perf for benchmarks.
set -euo pipefail
need=()
command -v b3sum >/dev/null || need+=(b3sum)
command -v xxhsum >/dev/null || need+=(xxhash)
command -v setpriv >/dev/null || need+=(util-linux)
command -v fincore >/dev/null || need+=(util-linux-extra)
command -v sha256sum >/dev/null || need+=(coreutils)
command -v script >/dev/null || need+=(bsdutils)
command -v groff >/dev/null || need+=(groff-base)
[ -x /usr/bin/time ] || need+=(time)
# CI's watchdog (scripts/watchdog.sh) prints a hung test's stacks with gdb.
if [ "${CI:-}" = true ]; then
  command -v gdb >/dev/null || need+=(gdb)
fi
if [ "${RINGREAD_BENCH_TOOLS:-0}" = 1 ]; then
  command -v fio >/dev/null || need+=(fio)
  command -v hyperfine >/dev/null || need+=(hyperfine)
  command -v perf >/dev/null || need+=(linux-perf)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (a Rust toolchain) is required" >&2; exit 1; }
