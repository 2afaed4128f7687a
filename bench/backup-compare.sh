#!/usr/bin/env bash
# A full backup of a 1 GiB qcow2 image (every cluster random data) into a new qcow2 target, blk serve (as it ships:
# Native AOT) against qemu-storage-daemon 7.2 in the same run, speed 0: the time from blockdev-backup to
# BLOCK_JOB_COMPLETED (bench/job-time.py). Each daemon opens the same source image read-write and a fresh target; the
# runs alternate RUNS times (default 1) and the ratio is QSD's time over blk's (> 1: blk is faster). The page cache is
# warm for both (the source is read once before the first run).
#   flock /tmp/block-build.lock bench/backup-compare.sh     (about a minute)
# Environment: BENCH_DIR (default /tmp/blk-bench), RUNS (default 1), SIZE_MIB (default 1024).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}/backup"
runs="${RUNS:-1}"
size="${SIZE_MIB:-1024}"
mkdir -p "$dir"
blk="$("$root/bench/publish-blk.sh" "${BENCH_DIR:-/tmp/blk-bench}/blk-publish")"
src="$dir/src.qcow2"
if [ ! -f "$src" ] || [ "$(qemu-img info --output=json "$src" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" != $((size << 20)) ]; then
  head -c "$((size << 20))" /dev/urandom > "$dir/src.raw"
  qemu-img convert -O qcow2 "$dir/src.raw" "$src"
  rm -f "$dir/src.raw"
fi
cat "$src" > /dev/null

pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT
run() { # NAME PROGRAM... ; prints the seconds of one full backup
  local name="$1"; shift
  local sock="$dir/$name.sock" target="$dir/$name-target.qcow2"
  rm -f "$sock" "$target"
  qemu-img create -q -f qcow2 "$target" "${size}M"
  "$@" --blockdev "driver=file,node-name=sf,filename=$src" --blockdev driver=qcow2,node-name=s,file=sf \
    --blockdev "driver=file,node-name=tf,filename=$target" --blockdev driver=qcow2,node-name=t,file=tf \
    --chardev "socket,id=m0,path=$sock,server=on,wait=off" --monitor chardev=m0 >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  python3 "$root/bench/job-time.py" "$sock" blockdev-backup '{"device": "s", "job-id": "b", "target": "t", "sync": "full"}'
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  qemu-img compare -q "$src" "$target" || { echo "$name: target differs from the source" >&2; exit 1; }
  rm -f "$target"
}

printf '%-4s %10s %10s %7s\n' run "blk s" "QSD s" ratio
for i in $(seq "$runs"); do
  t_blk=$(run blk "$blk" serve)
  t_qsd=$(run qsd qemu-storage-daemon)
  printf '%-4s %10s %10s %7s\n' "$i" "$t_blk" "$t_qsd" "$(awk "BEGIN{printf \"%.2f\", $t_qsd/$t_blk}")"
done
