#!/usr/bin/env bash
# A host directory as a FAT16 disk, read whole: blk convert (as it ships: Native AOT) against qemu-img convert 7.2,
# both `-f vvfat -O raw fat:16:DIR`, both defaults, the runs alternating RUNS times (default 3), best kept (the images'
# equality is the tests' business: tests/Block.Tests/Vvfat). The tree: one file of BIG_MIB (default 256) random MiB and FILES (default
# 2000) small files in 20 directories. Ratio = qemu-img's time / blk's (> 1: blk is faster).
#   flock /tmp/block-build.lock bench/vvfat-compare.sh        (about a minute)
# Environment: BENCH_DIR (default /tmp/blk-bench), RUNS, BIG_MIB, FILES, BLK (a blk binary to use instead of
# publishing one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}/vvfat"
runs="${RUNS:-3}"
big="${BIG_MIB:-256}"
files="${FILES:-2000}"
rm -rf "$dir"; mkdir -p "$dir/tree"
blk="${BLK:-$("$root/bench/publish-blk.sh" "${BENCH_DIR:-/tmp/blk-bench}/blk-publish")}"
head -c "$((big << 20))" /dev/urandom > "$dir/tree/big.bin"
for d in $(seq 1 20); do
  mkdir -p "$dir/tree/directory number $d"
  for f in $(seq 1 $((files / 20))); do
    head -c $((f * 97)) /dev/urandom > "$dir/tree/directory number $d/a file with a long name $f.dat"
  done
done
best() { sort -n | head -1; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
declare -A t
for _ in $(seq "$runs"); do
  for tool in qemu blk; do
    if [ $tool = qemu ]; then conv=(qemu-img convert); else conv=("$blk" convert); fi
    rm -f "$dir/$tool.raw"
    t[$tool]+="$(time_of "${conv[@]}" -f vvfat -O raw "fat:16:$dir/tree" "$dir/$tool.raw") "
  done
done
mib=$(( $(stat -c %s "$dir/blk.raw") >> 20 ))
q="$(tr ' ' '\n' <<<"${t[qemu]}" | grep . | best)"; b="$(tr ' ' '\n' <<<"${t[blk]}" | grep . | best)"
printf 'fat:16 %d MiB disk (%d MiB of files)  qemu-img %6.2f s  blk %6.2f s  ratio %.2f\n' "$mib" "$(du -sm "$dir/tree" | cut -f1)" \
  "$q" "$b" "$(echo "$q / $b" | bc -l)"
