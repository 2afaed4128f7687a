#!/usr/bin/env bash
# blk against qemu-img 7.2 over nfs:// to a throwaway ganesha (VFS backend) and rpcbind, both in private network,
# mount and PID namespaces (unshare; the clients run inside the network namespace with nsenter, as the tests do):
#   4 KiB random-offset reads at queue depth 16:  qemu-img bench -d 16 -s 4k  vs  blk bench, same flags
#   1 MiB sequential reads:                        qemu-img convert -f raw -O raw nfs://… local.raw  vs  blk convert
# on one SIZE_MIB (default 512) raw image, the runs alternating RUNS times (default 2), best kept.
# Ratio = qemu-img's time / blk's (> 1: blk is faster).
#   flock /tmp/block-build.lock bench/nfs-compare.sh        (root: unshare and nsenter need it)
# Environment: BENCH_DIR (default /tmp/blk-bench), RUNS, SIZE_MIB, COUNT (bench requests, default 100000), BLK (a blk
# binary to use instead of publishing one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}/nfs"
runs="${RUNS:-2}"
size="${SIZE_MIB:-512}"
count="${COUNT:-100000}"
rm -rf "$dir"; mkdir -p "$dir/export" "$dir/recovery"
blk="${BLK:-$("$root/bench/publish-blk.sh" "${BENCH_DIR:-/tmp/blk-bench}/blk-publish")}"
cat > "$dir/ganesha.conf" <<CFG
NFS_CORE_PARAM { Protocols = 3; NFS_Port = 2049; MNT_Port = 20048; Enable_NLM = false; Enable_RQUOTA = false; Mount_Path_Pseudo = true; }
NFSV4 { Graceless = true; RecoveryRoot = $dir/recovery; }
EXPORT { Export_Id = 1; Path = $dir/export; Pseudo = $dir/export; Access_Type = RW; Squash = No_Root_Squash;
         Protocols = 3; Transports = TCP; SecType = sys; FSAL { Name = VFS; } }
LOG { Default_Log_Level = WARN; }
CFG
cat > "$dir/server.sh" <<SH
set -e
ip link set lo up
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /run/rpcbind
rpcbind -f -w &
exec ganesha.nfsd -F -L $dir/ganesha.log -f $dir/ganesha.conf -p $dir/ganesha.pid
SH
unshare --net --mount --pid --fork --kill-child -- sh "$dir/server.sh" & server=$!
trap 'kill -9 "$server" 2>/dev/null; true' EXIT
init=""
for _ in $(seq 600); do
  init="$(cat "/proc/$server/task/$server/children" 2>/dev/null | awk '{print $1}')"
  [ -n "$init" ] && nsenter --net="/proc/$init/ns/net" rpcinfo -p 127.0.0.1 2>/dev/null | grep -q 100003 && break
  sleep 0.1
done
ns=(nsenter --net="/proc/$init/ns/net" --)
url="nfs://127.0.0.1$dir/export/disk.raw"
head -c "$((size << 20))" /dev/urandom > "$dir/export/disk.raw"

best() { tr ' ' '\n' | grep . | sort -n | head -1; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
declare -A t
for _ in $(seq "$runs"); do
  for tool in qemu blk; do
    if [ $tool = qemu ]; then img=(qemu-img); else img=("$blk"); fi
    t[$tool-4k]+="$(time_of "${ns[@]}" "${img[@]}" bench -f raw -c "$count" -d 16 -s 4k -S 1048579 "$url") "
    rm -f "$dir/down.raw"
    t[$tool-seq]+="$(time_of "${ns[@]}" "${img[@]}" convert -f raw -O raw "$url" "$dir/down.raw") "
    cmp -s "$dir/export/disk.raw" "$dir/down.raw" || { echo "$tool: convert differs" >&2; exit 1; }
  done
done
q="$(best <<<"${t[qemu-4k]}")"; b="$(best <<<"${t[blk-4k]}")"
printf '4k-qd16  %6d reads  qemu-img %6.2f s (%7.0f IOPS)  blk %6.2f s (%7.0f IOPS)  ratio %.2f\n' "$count" \
  "$q" "$(echo "$count / $q" | bc -l)" "$b" "$(echo "$count / $b" | bc -l)" "$(echo "$q / $b" | bc -l)"
q="$(best <<<"${t[qemu-seq]}")"; b="$(best <<<"${t[blk-seq]}")"
printf 'seq-1M   %6d MiB    qemu-img %6.2f s (%7.1f MiB/s) blk %6.2f s (%7.1f MiB/s) ratio %.2f\n' "$size" \
  "$q" "$(echo "$size / $q" | bc -l)" "$b" "$(echo "$size / $b" | bc -l)" "$(echo "$q / $b" | bc -l)"
