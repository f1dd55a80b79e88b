#!/bin/sh
# Runs the async stream's tests (buffers lent as chunks and Bytes, cancellation, hundreds of streams)
# under AddressSanitizer + LeakSanitizer. The stable toolchain ships the sanitizer runtimes;
# RUSTC_BOOTSTRAP=1 unlocks the -Z flag. A separate target directory keeps the instrumented build
# apart from the normal one.
set -eu
cd "$(dirname "$0")/.."
target="$(rustc -vV | sed -n 's/^host: //p')"
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" ASAN_OPTIONS=detect_leaks=1 RINGREAD_ASAN=1 \
  CARGO_TARGET_DIR="${ASAN_TARGET_DIR:-target/asan}" \
  cargo test --target "$target" --test stream --test stream_many "$@"
