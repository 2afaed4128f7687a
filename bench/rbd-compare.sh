#!/usr/bin/env bash
# blk against qemu-img 7.2 over one rbd image on a throwaway one-node Ceph 16 cluster (tests/Block.Rbd.Tests/ceph/
# start-cluster.sh: ceph-mon + one ceph-osd on memstore, loopback, cephx), both with their defaults otherwise:
#   4 KiB reads at queue depth 16:  {qemu-img,blk} bench -f raw -t none -d 16 -s 4k -c COUNT -S 4096 rbd:…
#   1 MiB sequential reads:         {qemu-img,blk} bench -f raw -t none -d 1 -s 1M -c COUNT rbd:…
#     (both timed by the tool's own "Run completed in" line)
#   whole-image convert to a file:  {qemu-img,blk} convert -f raw -O raw rbd:… /dev/shm file (the whole process)
# alternating RUNS times (default 2), best kept. Ratio = qemu-img's time / blk's (> 1: blk is faster).
#   flock /tmp/block-build.lock bench/rbd-compare.sh
# Environment: BENCH_DIR (default /tmp/blk-bench), RUNS (default 2), SIZE_MIB (default 256), BLK (a blk binary to use
# instead of publishing one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}/rbd"
runs="${RUNS:-2}"
size="${SIZE_MIB:-256}"
blk="${BLK:-$("$root/bench/publish-blk.sh" "${BENCH_DIR:-/tmp/blk-bench}/blk-publish")}"
rm -rf "$dir"; mkdir -p "$dir/cluster"
port="$(python3 -c 'import socket
for p in range(20000, 30000, 7):
    try:
        a=socket.socket(); a.bind(("127.0.0.1",p)); b=socket.socket(); b.bind(("127.0.0.1",p+1)); print(p); break
    except OSError: pass')"
stop() {
  for f in "$dir/cluster/run/osd.0.pid" "$dir/cluster/run/mon.a.pid"; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  true
}
trap stop EXIT
bash "$root/tests/Block.Rbd.Tests/ceph/start-cluster.sh" "$dir/cluster" "$port" >/dev/null
img="rbd:rbd/bench:conf=$dir/cluster/ceph.conf"
head -c "$((size << 20))" /dev/urandom > /dev/shm/blk-rbd-src.raw
qemu-img convert -f raw -O raw /dev/shm/blk-rbd-src.raw "$img"
rm -f /dev/shm/blk-rbd-src.raw
best() { sort -n | head -1; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
# The bench rows are timed by each tool's own "Run completed in" line: a whole process would add librbd's connect to
# the monitor and its close, a tenth of a second each that is not the reads'.
bench_time() { local out; out="$("$@" 2>&1)" || { echo "failed: $*" >&2; exit 1; }; sed -n 's/^Run completed in \([0-9.]*\) seconds\./\1/p' <<<"$out"; }
small=$((size * 256 / 4))    # 4 KiB requests over a quarter of the image
large=$size                  # 1 MiB requests over the whole image
declare -A t
for _ in $(seq "$runs"); do
  for tool in qemu blk; do
    if [ $tool = qemu ]; then cmd=(qemu-img); else cmd=("$blk"); fi
    t[$tool-4k]+="$(bench_time "${cmd[@]}" bench -f raw -t none -d 16 -s 4k -S 4096 -c "$small" "$img") "
    t[$tool-1m]+="$(bench_time "${cmd[@]}" bench -f raw -t none -d 1 -s 1M -c "$large" "$img") "
    rm -f /dev/shm/blk-rbd-out.raw
    t[$tool-conv]+="$(time_of "${cmd[@]}" convert -f raw -O raw "$img" /dev/shm/blk-rbd-out.raw) "
    rm -f /dev/shm/blk-rbd-out.raw
  done
done
line() { # name, requests, bytes each
  q="$(tr ' ' '\n' <<<"${t[qemu-$1]}" | grep . | best)"; b="$(tr ' ' '\n' <<<"${t[blk-$1]}" | grep . | best)"
  printf '%-22s qemu-img %6.2f s  blk %6.2f s  ratio %.2f\n' "$2" "$q" "$b" "$(echo "$q / $b" | bc -l)"
}
line 4k "4k QD16 x$small"
line 1m "1M QD1 x$large"
line conv "convert ${size} MiB"
