#!/usr/bin/env bash
# Puts ringread beside fio on the same file, block size and depth, in one run.
#
#   scripts/fio-compare.sh FILE [BLOCK_SIZE] [DEPTH] [RUNS]     (defaults: 1M 16 3)
#   CACHES="direct cold" scripts/fio-compare.sh ...              (only those cache states)
#   PATTERN=random scripts/fio-compare.sh FILE [4K] [128] [3]    (random reads: IOPS)
#
# PATTERN=random: fio --rw=randread (5 s each, --norandommap) with psync (1 job, 2 jobs) and io_uring
# with fixed buffers and registered files at DEPTH, beside `ringread bench --pattern random` with the
# engine's range reads (`ranges`) and async `read_at` (`read-at`, 64 tasks; O_DIRECT too) doing
# COUNT reads (default 200000). Prints IOPS per run and the median.
#
# Cache states: warm (fio --invalidate=0, the file read once before each run), cold buffered (page
# cache dropped before each run: fio --invalidate=1, ringread drops it itself) and direct (O_DIRECT).
# fio engines: psync, and io_uring with fixed buffers and registered files. Needs fio (apt-get install
# fio) and a release build (cargo build --release). Prints GiB/s per run and the median.
set -euo pipefail
file=${1:?usage: $0 FILE [BLOCK_SIZE] [DEPTH] [RUNS]}
if [ "${PATTERN:-seq}" = random ]; then bs=${2:-4K}; depth=${3:-128}; else bs=${2:-1M}; depth=${3:-16}; fi
runs=${4:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
ringread=${RINGREAD:-$here/target/release/ringread}
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)" >&2; exit 1; }
[ -x "$ringread" ] || { echo "build first: cargo build --release" >&2; exit 1; }
fio_bs=$(echo "$bs" | tr 'A-Z' 'a-z' | sed 's/ib$//')

gib() { python3 -c "import json,sys; t=sys.stdin.read(); d=json.loads(t[t.index('{'):]); print('%.2f' % (d['jobs'][0]['read']['bw_bytes']/2**30))"; }
median() { python3 -c "import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print('%.2f' % statistics.median(v))" "$@"; }
warm() { cat "$file" >/dev/null; }
drop() { dd if="$file" iflag=nocache count=0 status=none; [ "$(id -u)" = 0 ] && { sync; echo 1 > /proc/sys/vm/drop_caches; } || true; }

run_fio() { # cache engine extra...
  local cache=$1 engine=$2; shift 2
  local direct=0 inval=0
  case $cache in direct) direct=1 ;; cold) inval=1 ;; esac
  fio --name=cmp --filename="$file" --readonly --rw=read --bs="$fio_bs" --iodepth="$depth" \
      --ioengine="$engine" --direct=$direct --invalidate=$inval --output-format=json "$@" | gib
}
run_ringread() { # cache backend
  "$ringread" bench "$file" --backends "$2" --cache "$1" --runs 1 --chunk-size "$bs" --depth "$depth" \
      --json - 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print('%.2f' % d['results'][0]['methods'][0]['median_gib_per_s'])"
}

if [ "${PATTERN:-seq}" = random ]; then
  count=${COUNT:-200000}
  iops() { python3 -c "import json,sys; t=sys.stdin.read(); d=json.loads(t[t.index('{'):]); print('%.0f' % sum(j['read']['iops'] for j in d['jobs']))"; }
  rand_fio() { # cache engine extra...
    local cache=$1 engine=$2; shift 2
    local direct=0; [ "$cache" = direct ] && direct=1
    fio --name=cmp --filename="$file" --readonly --rw=randread --bs="$fio_bs" --ioengine="$engine" \
        --direct=$direct --invalidate=0 --norandommap --time_based --runtime=5 --group_reporting \
        --output-format=json "$@" | iops
  }
  rand_ringread() { # cache way
    "$ringread" bench "$file" --pattern random --processor null --backends "$2" --cache "$1" --runs 1 \
        --block-size "$bs" --depth "$depth" --count "$count" --json - 2>/dev/null |
      python3 -c "import json,sys; d=json.load(sys.stdin); print('%.0f' % d['results'][0]['methods'][0]['median_iops'])"
  }
  echo "file $file ($(stat -c %s "$file") bytes), random $bs reads, depth $depth, $runs runs each, IOPS"
  for cache in ${CACHES:-warm direct}; do
    declare -A res=()
    ways="fio-psync-1 fio-psync-2 fio-io_uring-fixed ringread-ranges"
    ways="$ways ringread-read-at"
    for r in $(seq "$runs"); do
      for what in $ways; do
        case $cache in warm) warm ;; *) drop ;; esac
        case $what in
          fio-psync-1) v=$(rand_fio "$cache" psync --numjobs=1) ;;
          fio-psync-2) v=$(rand_fio "$cache" psync --numjobs=2) ;;
          fio-io_uring-fixed) v=$(rand_fio "$cache" io_uring --iodepth="$depth" --fixedbufs=1 --registerfiles=1) ;;
          ringread-ranges) v=$(rand_ringread "$cache" ranges) ;;
          ringread-read-at) v=$(rand_ringread "$cache" read-at) ;;
        esac
        res[$what]="${res[$what]:-} $v"
      done
    done
    for what in $ways; do
      # shellcheck disable=SC2086
      printf '%-7s %-22s median %9s   runs:%s\n' "$cache" "$what" "$(median ${res[$what]} | cut -d. -f1)" "${res[$what]}"
    done
    unset res
  done
  exit 0
fi

echo "file $file ($(stat -c %s "$file") bytes), block $bs, depth $depth, $runs runs each, GiB/s"
for cache in ${CACHES:-warm cold direct}; do
  declare -A res=()
  for r in $(seq "$runs"); do
    for what in fio-psync fio-io_uring-fixed ringread-sync ringread-uring-fixed; do
      case $cache in warm) warm ;; *) drop ;; esac
      case $what in
        fio-psync) v=$(run_fio "$cache" psync) ;;
        fio-io_uring-fixed) v=$(run_fio "$cache" io_uring --fixedbufs=1 --registerfiles=1) ;;
        ringread-sync) v=$(run_ringread "$cache" sync) ;;
        ringread-uring-fixed) v=$(run_ringread "$cache" uring-fixed) ;;
      esac
      res[$what]="${res[$what]:-} $v"
    done
  done
  for what in fio-psync fio-io_uring-fixed ringread-sync ringread-uring-fixed; do
    # shellcheck disable=SC2086
    printf '%-7s %-22s median %6s   runs:%s\n' "$cache" "$what" "$(median ${res[$what]})" "${res[$what]}"
  done
  unset res
done
