#!/usr/bin/env bash
# QMP round trips per second, blk serve (as it ships: Native AOT) against qemu-storage-daemon 7.2, both serving the
# same graph (a 64 MiB qcow2 image over a file node) on a unix socket. Workloads: query-block, query-named-block-nodes
# (two nodes), and blockdev-add + blockdev-del of a null-co node. Each pair runs alternately three times; the best of
# each is kept and the ratio is blk's rate over QSD's (> 1: blk is faster). The client is bench/qmp-roundtrips.py,
# one command in flight at a time; its own cost is in both figures.
#   flock /tmp/block-build.lock bench/qmp-compare.sh      (needs qemu-system-common; about a minute)
# Environment: BENCH_DIR (default /tmp/blk-bench), COUNT (round trips per run, default 20000).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}"
count="${COUNT:-20000}"
mkdir -p "$dir/qmp"
blk="$("$root/bench/publish-blk.sh" "$dir/blk-publish")"
image_blk="$dir/qmp/blk.qcow2"
image_qsd="$dir/qmp/qsd.qcow2"
qemu-img create -q -f qcow2 "$image_blk" 64M
qemu-img create -q -f qcow2 "$image_qsd" 64M

start_daemon() { # NAME PROGRAM... ; prints the socket path, and leaves the daemon's pid in $dir/qmp/NAME.pid
  local name="$1"; shift
  local sock="$dir/qmp/$name.sock"
  rm -f "$sock"
  "$@" --chardev "socket,id=m0,path=$sock,server=on,wait=off" --monitor chardev=m0 >/dev/null 2>&1 &
  echo $! > "$dir/qmp/$name.pid"
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  echo "$sock"
}

blk_sock="$(start_daemon blk "$blk" serve --blockdev "driver=file,node-name=file0,filename=$image_blk" --blockdev driver=qcow2,node-name=fmt0,file=file0)"
qsd_sock="$(start_daemon qsd qemu-storage-daemon --blockdev "driver=file,node-name=file0,filename=$image_qsd" --blockdev driver=qcow2,node-name=fmt0,file=file0)"
trap 'kill "$(cat "$dir/qmp/blk.pid")" "$(cat "$dir/qmp/qsd.pid")" 2>/dev/null || true' EXIT

printf '%-26s %12s %12s %7s\n' workload "blk /s" "QSD /s" ratio
for workload in query-block query-named-block-nodes add-del; do
  best_blk=0; best_qsd=0
  for _ in 1 2 3; do
    r=$(python3 "$root/bench/qmp-roundtrips.py" "$blk_sock" "$workload" "$count")
    if [ "$r" -gt "$best_blk" ]; then best_blk=$r; fi
    r=$(python3 "$root/bench/qmp-roundtrips.py" "$qsd_sock" "$workload" "$count")
    if [ "$r" -gt "$best_qsd" ]; then best_qsd=$r; fi
  done
  printf '%-26s %12s %12s %7s\n' "$workload" "$best_blk" "$best_qsd" "$(awk "BEGIN{printf \"%.2f\", $best_blk/$best_qsd}")"
done
