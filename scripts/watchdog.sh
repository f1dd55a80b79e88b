#!/usr/bin/env bash
# Runs a command with a time limit, for CI's test steps: a test that hangs fails the step within
# the limit, with every thread's stack of every process still running under it (gdb where
# installed, else the kernel's /proc/PID/task/*/stack and wchan), instead of running on until
# CI's own timeout says only that time ran out.
#
#   scripts/watchdog.sh SECONDS COMMAND [ARGS...]
#
# Exit status: the command's, or 124 when the limit was reached (the command is then killed).
set -uo pipefail
limit=$1
shift
# Its own process group, so that the command and every process it starts can be stopped together.
setsid "$@" &
pid=$!
waited=0
while kill -0 "$pid" 2>/dev/null; do
  if [ "$waited" -ge "$limit" ]; then
    echo "watchdog: '$*' still running after ${limit}s; the stacks of what runs under it:" >&2
    for p in $(ps -o pid= -g "$pid"); do
      [ -d "/proc/$p" ] || continue
      # cargo itself only waits for its test binaries.
      [ "$(cat "/proc/$p/comm" 2>/dev/null)" = cargo ] && continue
      echo "--- pid $p: $(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-200)" >&2
      if command -v gdb >/dev/null; then
        timeout 60 gdb -p "$p" -batch -ex 'thread apply all bt 30' 2>/dev/null |
          grep -v '^\[New LWP' >&2
      else
        for t in /proc/"$p"/task/*; do
          echo "thread $(cat "$t/comm" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)" >&2
          cat "$t/stack" 2>/dev/null >&2
        done
      fi
    done
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    exit 124
  fi
  sleep 5
  waited=$((waited + 5))
done
wait "$pid"
