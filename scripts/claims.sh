#!/usr/bin/env bash
# Every speed claim of the README and docs/BENCHMARKS.md, measured again side by side in one run on
# this machine, each with its cache state, and whether it holds (issue 25, item 6). Run it before a
# change lands; a claim that no longer holds is fixed, or changed where it is written.
#
#   scripts/claims.sh [DATA_DIR]          (RINGREAD=path/to/ringread to measure another build)
#   ONLY=xxh3,tree-cold scripts/claims.sh (only the claims whose key is listed)
#
# DATA_DIR (default $TMPDIR/ringread-claims) gets the data once and keeps it: a 2 GiB random file,
# a 512 MiB text file, a 40,000-file and a 20,000-file generated tree (~2.5 GiB in all). Needs root
# (drop_caches), hyperfine, fio, b3sum, xxhsum, GNU coreutils (scripts/setup.sh with
# RINGREAD_BENCH_TOOLS=1 installs them) and a release build. Ratios are ringread's time over the
# peer's (lower is better) or, for IOPS and GiB/s, ringread's rate over the peer's (higher is
# better). Exit status 1 when a claim does not hold. About 15 minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rr=${RINGREAD:-$here/target/release/ringread}
[ -x "$rr" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for t in hyperfine fio b3sum xxhsum sha256sum wc; do
  command -v "$t" >/dev/null || { echo "$t is not installed (scripts/setup.sh)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "root is needed to drop the page cache (cold claims)" >&2; exit 1; }
data=${1:-${TMPDIR:-/tmp}/ringread-claims}
mkdir -p "$data"
big=$data/big2g text=$data/text512m tree=$data/tree40k small=$data/tree20k
[ -f "$big" ] || head -c 2G /dev/urandom >"$big"
[ -f "$text" ] || python3 -c "
import random, sys
random.seed(3)
words = [''.join(random.choice('abcdefghij') for _ in range(random.randint(1, 12))) for _ in range(5000)]
with open(sys.argv[1], 'w') as f:
    n = 0
    while n < 512 << 20:
        line = ' '.join(random.choices(words, k=random.randint(1, 16))) + '\n'
        f.write(line); n += len(line)
" "$text"
[ -d "$tree" ] || "$rr" bench --make-tree "$tree" --files 40000 >/dev/null
[ -d "$small" ] || "$rr" bench --make-tree "$small" --files 20000 >/dev/null
list=$data/tree40k.list
[ -f "$list" ] || find "$tree" -type f -print0 | sort -z >"$list"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cold='sync; echo 3 > /proc/sys/vm/drop_caches'
warm_tree() { echo "find $1 -type f -print0 | xargs -0 cat >/dev/null"; }
rows=() failed=0
want() { [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]]; }

# A row: key, claim, ringread's figure, the peer's, the ratio, the target (<= or >= a number).
row() {
  local verdict
  verdict=$(python3 -c "import sys; r, op, t = float(sys.argv[1]), sys.argv[2], float(sys.argv[3]); print('holds' if (r <= t if op == '<=' else r >= t) else 'MISSED')" "$5" "$6" "$7")
  [ "$verdict" = holds ] || failed=1
  rows+=("$1"$'\t'"${2//|/\\|}"$'\t'"$3"$'\t'"$4"$'\t'"$5"$'\t'"$6 $7"$'\t'"$verdict")
}

# Times a ringread command and a peer's (shell) command; the ratio of mean times. hyperfine runs
# one command's runs, then the other's, and the first block can find the host's cache (the disk is
# a virtio device) colder: each claim runs in both orders, averaged.
timed() { # key claim prepare runs op target ringread-args peer-command
  local key=$1 claim=$2 prepare=$3 runs=$4 op=$5 target=$6 args=$7 peer=$8
  want "$key" || return 0
  hyperfine --style none --runs "$runs" --prepare "$prepare" --export-json "$out/a.json" \
    "$rr $args" "$peer" >/dev/null 2>&1
  hyperfine --style none --runs "$runs" --prepare "$prepare" --export-json "$out/b.json" \
    "$peer" "$rr $args" >/dev/null 2>&1
  read -r a b r < <(python3 -c "
import json, sys
x = json.load(open(sys.argv[1]))['results']
y = json.load(open(sys.argv[2]))['results']
ours, theirs = (x[0]['mean'] + y[1]['mean']) / 2, (x[1]['mean'] + y[0]['mean']) / 2
print(f'{ours*1000:.0f}ms {theirs*1000:.0f}ms {ours/theirs:.2f}')" "$out/a.json" "$out/b.json")
  row "$key" "$claim" "$a" "$b" "$r" "$op" "$target"
}

# Two ways of one `ringread bench` run (one cache state): the ratio of their figures.
benched() { # key claim op target field ours theirs bench-args...
  local key=$1 claim=$2 op=$3 target=$4 field=$5 ours=$6 theirs=$7
  shift 7
  want "$key" || return 0
  "$rr" bench "$@" --json "$out/b.json" >/dev/null 2>&1
  read -r a b r < <(python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
m = {w['name']: w for w in d['results'][0]['methods']}
f = sys.argv[2]
def one(name):
    w = m[name]
    return w[f] if f in w else 1.0 / w['median_seconds']
a, b = one(sys.argv[3]), one(sys.argv[4])
fmt = (lambda v: f'{v/1000:.0f}k') if f == 'median_iops' else (lambda v: f'{v:.2f}')
r = (a / b) if sys.argv[5] == 'rate' else (b / a)
print(fmt(a), fmt(b), f'{r:.2f}')" "$out/b.json" "$field" "$ours" "$theirs" "${RATE:-rate}")
  row "$key" "$claim" "$a" "$b" "$r" "$op" "$target"
}

timed xxh3 "sum -a xxh3, 2 GiB, warm, vs xxhsum -H3" "cat $big >/dev/null" 10 '<=' 0.5 \
  "sum -a xxh3 $big" "xxhsum -H3 $big"
timed count "count, 512 MiB text, warm, vs wc -l" "cat $text >/dev/null" 10 '<=' 0.5 \
  "count $text" "wc -l $text"
timed blake3 "sum (BLAKE3), 2 GiB, warm, vs b3sum" "cat $big >/dev/null" 10 '<=' 1.0 \
  "sum $big" "b3sum $big"
timed sha256 "sum -a sha256, 2 GiB, warm, vs sha256sum" "cat $big >/dev/null" 3 '<=' 0.25 \
  "sum -a sha256 $big" "sha256sum $big"
timed tree-cold "sum -r, 40,000-file tree, cold, vs find | xargs -0 -P8 -n1000 b3sum" "$cold" 3 '<=' 0.5 \
  "sum -r $tree" "find $tree -type f -print0 | xargs -0 -P8 -n1000 b3sum"
timed list-warm "sum -a xxh3 --files0-from, 40,000 files, warm, vs xargs -0 xxhsum -H3" "$(warm_tree "$tree")" 5 '<=' 0.5 \
  "sum -a xxh3 --files0-from $list" "xargs -0 xxhsum -H3 <$list"
timed tree-warm "sum -r (BLAKE3), 40,000-file tree, warm, vs xargs -0 -P2 -n5000 b3sum" "$(warm_tree "$tree")" 5 '<=' 0.8 \
  "sum -r $tree" "find $tree -type f -print0 | xargs -0 -P2 -n5000 b3sum"
# The library's own read_each against what a Rust user writes instead (bench --tree's ways: `many`
# is Reader::read_each, `threads` std::fs::read on N threads), 20,000 cached files, xxh3.
RATE=time benched read-each-2 "Reader::read_each, 20,000 cached files, vs std::fs::read on 2 threads" '<=' 0.8 \
  median_gib_per_s many threads --tree "$small" --backends many,threads --pool-threads 2 --cache warm --runs 5
RATE=time benched read-each-8 "Reader::read_each, 20,000 cached files, vs std::fs::read on 8 threads" '<=' 0.8 \
  median_gib_per_s many threads --tree "$small" --backends many,threads --pool-threads 8 --cache warm --runs 5
benched stream "async stream, warm, null processor, vs tokio-uring (GiB/s)" '>=' 1.0 \
  median_gib_per_s stream tokio-uring "$big" --backends stream,tokio-uring --processor null --cache warm --runs 5

if want random; then
  cat "$big" >/dev/null
  fio_iops=$(fio --name=claims --filename="$big" --readonly --rw=randread --bs=4k --ioengine=psync \
    --numjobs=2 --direct=0 --invalidate=0 --norandommap --time_based --runtime=5 --group_reporting \
    --output-format=json | python3 -c "import json,sys; t=sys.stdin.read(); d=json.loads(t[t.index('{'):]); print('%.0f' % sum(j['read']['iops'] for j in d['jobs']))")
  ours=$("$rr" bench "$big" --pattern random --processor null --backends ranges --cache warm --runs 3 \
    --count 200000 --json - 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print('%.0f' % d['results'][0]['methods'][0]['median_iops'])")
  row random "random 4 KiB, warm, IOPS, vs fio psync 2 jobs" "$((ours / 1000))k" "$((fio_iops / 1000))k" \
    "$(python3 -c "print(f'{$ours / $fio_iops:.2f}')")" '>=' 1.0
fi

echo "ringread: $rr ($("$rr" --version)); $(nproc) CPUs, $(uname -r); data in $data"
printf '| claim | ringread | peer | ratio | target | |\n|---|---|---|---|---|---|\n'
for r in "${rows[@]}"; do
  IFS=$'\t' read -r _ claim a b ratio target verdict <<<"$r"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$claim" "$a" "$b" "$ratio" "$target" "$verdict"
done
exit $failed
