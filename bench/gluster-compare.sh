#!/usr/bin/env bash
# blk against qemu-img 7.2 over gluster:// to a throwaway glusterd with a one-brick volume (force, on 127.0.0.2), in
# private network, mount and PID namespaces (unshare; the clients run inside the network namespace with nsenter, as
# the tests do). Timed with bench-style I/O, each tool's own "Run completed in" figure, because libgfapi 10.3 spends
# about 10 s in glfs_fini at every close, which would swamp a whole-process time:
#   4 KiB random-offset reads at queue depth 16:  qemu-img bench -d 16 -s 4k        vs  blk bench, same flags
#   1 MiB sequential reads at queue depth 4:       qemu-img bench -d 4 -s 1M -S 1M   vs  blk bench, same flags
# on one SIZE_MIB (default 512) raw image, the runs alternating RUNS times (default 2), best kept.
# Ratio = qemu-img's time / blk's (> 1: blk is faster).
#   flock /tmp/block-build.lock bench/gluster-compare.sh        (root: unshare and nsenter need it)
# Environment: BENCH_DIR (default /tmp/blk-bench), RUNS, SIZE_MIB, COUNT (4 KiB requests, default 100000), BLK (a blk
# binary to use instead of publishing one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}/gluster"
runs="${RUNS:-2}"
size="${SIZE_MIB:-512}"
count="${COUNT:-100000}"
seq_count=$((size * 2))
rm -rf "$dir"; mkdir -p "$dir/brick" "$dir/lib" "$dir/log"
blk="${BLK:-$("$root/bench/publish-blk.sh" "${BENCH_DIR:-/tmp/blk-bench}/blk-publish")}"
cat > "$dir/server.sh" <<SH
set -e
ip link set lo up
mount --make-rprivate /
mount --bind $dir/lib /var/lib/glusterd
mount --bind $dir/log /var/log/glusterfs
mount -t tmpfs tmpfs /run
exec glusterd -N --log-level=WARNING
SH
unshare --net --mount --pid --fork --kill-child -- sh "$dir/server.sh" & server=$!
trap 'kill -9 "$server" 2>/dev/null; true' EXIT
init=""
for _ in $(seq 600); do
  init="$(cat "/proc/$server/task/$server/children" 2>/dev/null | awk '{print $1}')"
  [ -n "$init" ] && nsenter -t "$init" --net --mount -- gluster --mode=script volume create vol0 "127.0.0.2:$dir/brick" force >/dev/null 2>&1 && break
  sleep 0.2
done
nsenter -t "$init" --net --mount -- gluster --mode=script volume start vol0 >/dev/null
ns=(nsenter --net="/proc/$init/ns/net" --)
url="gluster://127.0.0.2/vol0/disk.raw"
head -c "$((size << 20))" /dev/urandom > "$dir/brick/disk.raw"

best() { tr ' ' '\n' | grep . | sort -n | head -1; }
# The tool's own time for its requests ("Run completed in N seconds."), without connect and close.
run_time() { local out; out="$("$@" 2>&1)" || { echo "failed: $* $out" >&2; exit 1; }; grep -o 'Run completed in [0-9.]*' <<<"$out" | awk '{print $4}'; }
declare -A t
for _ in $(seq "$runs"); do
  for tool in qemu blk; do
    if [ $tool = qemu ]; then img=(qemu-img); else img=("$blk"); fi
    t[$tool-4k]+="$(run_time "${ns[@]}" "${img[@]}" bench -f raw -c "$count" -d 16 -s 4k -S 1048579 "$url") "
    t[$tool-seq]+="$(run_time "${ns[@]}" "${img[@]}" bench -f raw -c "$seq_count" -d 4 -s 1M -S 1M "$url") "
  done
done
q="$(best <<<"${t[qemu-4k]}")"; b="$(best <<<"${t[blk-4k]}")"
printf '4k-qd16  %6d reads  qemu-img %6.2f s (%7.0f IOPS)  blk %6.2f s (%7.0f IOPS)  ratio %.2f\n' "$count" \
  "$q" "$(echo "$count / $q" | bc -l)" "$b" "$(echo "$count / $b" | bc -l)" "$(echo "$q / $b" | bc -l)"
q="$(best <<<"${t[qemu-seq]}")"; b="$(best <<<"${t[blk-seq]}")"
printf 'seq-1M   %6d MiB    qemu-img %6.2f s (%7.1f MiB/s) blk %6.2f s (%7.1f MiB/s) ratio %.2f\n' "$seq_count" \
  "$q" "$(echo "$seq_count / $q" | bc -l)" "$b" "$(echo "$seq_count / $b" | bc -l)" "$(echo "$q / $b" | bc -l)"
