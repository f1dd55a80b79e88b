#!/usr/bin/env bash
# Two ringread binaries side by side in one run (issue 24: "no speed lost"): the same work through
# OLD and NEW, alternating, with the cache state stated. Prints a table of OLD's figure, NEW's and
# NEW/OLD as a speed ratio (above 1: NEW faster).
#
#   scripts/compare-binaries.sh OLD NEW [DATA_DIR]
#
# DATA_DIR (default $TMPDIR/ringread-compare) gets a 1 GiB file and a 50,000-file tree, made once
# and kept. Needs root (drop_caches for the cold rows), hyperfine and python3. Runs ~10 minutes.
set -euo pipefail
old=$(realpath "$1")
new=$(realpath "$2")
data=${3:-${TMPDIR:-/tmp}/ringread-compare}
mkdir -p "$data"
big=$data/big
tree=$data/tree
[ -f "$big" ] || head -c 1G /dev/urandom >"$big"
[ -d "$tree" ] || "$new" bench --make-tree "$tree" --files 50000 >/dev/null
ranges=$data/ranges
[ -f "$ranges" ] || python3 - "$ranges" <<'EOF'
import random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for _ in range(100_000):
        f.write(f"{random.randrange(262_144) * 4096}:4096\n")
EOF
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cold='sync; echo 3 > /proc/sys/vm/drop_caches'
warm="cat $big >/dev/null; find $tree -type f -print0 | xargs -0 cat >/dev/null"

rows=()
# hyperfine: mean seconds of each command; the ratio is OLD's time over NEW's. hyperfine runs one
# command's runs, then the other's: the first block can find the host's own cache colder (the
# disk is a virtio device), so each row runs in both orders and averages them.
timed() {
  local name=$1 prepare=$2 runs=$3
  shift 3
  # -N: no shell for the timed commands; the preparation is a shell line of its own.
  hyperfine -N --style none --runs "$runs" --prepare "sh -c '$prepare'" --export-json "$out/a.json" \
    "$old $*" "$new $*" >/dev/null 2>&1
  hyperfine -N --style none --runs "$runs" --prepare "sh -c '$prepare'" --export-json "$out/b.json" \
    "$new $*" "$old $*" >/dev/null 2>&1
  rows+=("$(python3 - "$out" "$name" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1] + "/a.json"))["results"]
b = json.load(open(sys.argv[1] + "/b.json"))["results"]
o = (a[0]["mean"] + b[1]["mean"]) / 2
n = (a[1]["mean"] + b[0]["mean"]) / 2
print(f"{sys.argv[2]}\t{o*1000:.1f} ms\t{n*1000:.1f} ms\t{o/n:.2f}")
EOF
)")
}
# ringread bench: one way's median figure from each binary, alternating, three rounds each.
benched() {
  local name=$1 key=$2
  shift 2
  for round in 1 2 3; do
    "$old" bench "$@" --json "$out/old$round.json" >/dev/null 2>&1
    "$new" bench "$@" --json "$out/new$round.json" >/dev/null 2>&1
  done
  rows+=("$(python3 - "$out" "$name" "$key" <<'EOF'
import json, statistics, sys
d, name, key = sys.argv[1:]
def fig(who):
    vals = [json.load(open(f"{d}/{who}{i}.json"))["results"][0]["methods"][0][key] for i in (1, 2, 3)]
    return statistics.median(vals)
o, n = fig("old"), fig("new")
unit = "IOPS" if key == "median_iops" else "GiB/s"
fmt = (lambda v: f"{v/1000:.0f}k {unit}") if key == "median_iops" else (lambda v: f"{v:.2f} {unit}")
print(f"{name}\t{fmt(o)}\t{fmt(n)}\t{n/o:.2f}")
EOF
)")
}

timed "1 GiB file, sum (BLAKE3), warm" "cat $big >/dev/null" 10 sum "$big"
timed "1 GiB file, sum -a xxh3, warm" "cat $big >/dev/null" 10 sum -a xxh3 "$big"
timed "1 GiB file, sum -a xxh3, cold" "$cold" 5 sum -a xxh3 "$big"
timed "50,000-file tree, sum -r, warm" "$warm" 5 sum -r "$tree"
timed "50,000-file tree, sum -r, cold" "$cold" 3 sum -r "$tree"
timed "100,000 random 4 KiB ranges, cat, warm" "cat $big >/dev/null" 5 cat --ranges-from "$ranges" "$big"
timed "100,000 random 4 KiB ranges, cat --direct" "true" 5 cat --direct --ranges-from "$ranges" "$big"
benched "async stream, warm, null processor" median_gib_per_s "$big" --backends stream --processor null --cache warm --runs 5
benched "async read_at, 64 tasks, warm 4 KiB" median_iops "$big" --pattern random --backends read-at --cache warm --runs 3
benched "async read_at, 64 tasks, direct 4 KiB" median_iops "$big" --pattern random --backends read-at --cache direct --runs 3

printf '| work | old | new | speed new/old |\n|---|---|---|---|\n'
for r in "${rows[@]}"; do
  IFS=$'\t' read -r a b c d <<<"$r"
  printf '| %s | %s | %s | %s |\n' "$a" "$b" "$c" "$d"
done
