#!/usr/bin/env bash
# blk against qemu-img 7.2 (Debian's qemu-block-extra) over the same iSCSI LUN: a throwaway tgtd (its own management
# number, a portal on a free loopback port) serving a LUN of random data backed by a file in BENCH_DIR.
#   - 4 KiB reads at queue depth 16: `blk bench` against `qemu-img bench` (-d 16 -s 4k), COUNT requests;
#   - 1 MiB sequential reads at queue depth 1 (-d 1 -s 1M), the same;
#   - a whole-LUN `convert` to raw in /dev/shm, both tools with their defaults.
# The runs alternate RUNS times (default 3) and the best of each is kept; ratio = qemu-img's time / blk's (> 1: blk is
# faster). blk runs as it ships (Native AOT, bench/publish-blk.sh).
#   flock /tmp/block-build.lock bench/iscsi-compare.sh        (about two minutes; needs tgt and qemu-block-extra)
# Environment: BENCH_DIR (default /tmp/blk-bench), RUNS, COUNT (default 100000), SIZE_MIB (default 512), BLK.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}/iscsi"
runs="${RUNS:-3}"
count="${COUNT:-100000}"
size="${SIZE_MIB:-512}"
rm -rf "$dir"; mkdir -p "$dir"
blk="${BLK:-$("$root/bench/publish-blk.sh" "${BENCH_DIR:-/tmp/blk-bench}/blk-publish")}"

head -c "$((size << 20))" /dev/urandom > "$dir/lun.img"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
control=$((RANDOM % 30000 + 1024))
iqn=iqn.2026-12.org.example.block:bench
tgtd_pid=""
trap '[ -n "$tgtd_pid" ] && kill -9 "$tgtd_pid" 2>/dev/null; rm -f /dev/shm/blk-iscsi-bench-*.raw; true' EXIT
tgtd -f -C "$control" --iscsi "portal=127.0.0.1:$port" >"$dir/tgtd.log" 2>&1 & tgtd_pid=$!
adm() { tgtadm -C "$control" --lld iscsi "$@"; }
for _ in $(seq 200); do adm --op show --mode target >/dev/null 2>&1 && break; sleep 0.05; done
adm --op new --mode target --tid 1 -T "$iqn"
adm --op new --mode logicalunit --tid 1 --lun 1 -b "$dir/lun.img"
adm --op bind --mode target --tid 1 -I ALL
url="iscsi://127.0.0.1:$port/$iqn/1"
cat "$dir/lun.img" > /dev/null

seconds() { sed -n 's/^Run completed in \([0-9.]*\) seconds\./\1/p'; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
declare -A t
seq_count=$((size * 4))
for _ in $(seq "$runs"); do
  for tool in qemu blk; do
    if [ $tool = qemu ]; then cmd=(qemu-img); else cmd=("$blk"); fi
    t[$tool-4k]+="$("${cmd[@]}" bench -f raw -c "$count" -d 16 -s 4k "$url" | seconds) "
    t[$tool-1m]+="$("${cmd[@]}" bench -f raw -c "$seq_count" -d 1 -s 1M "$url" | seconds) "
    out="/dev/shm/blk-iscsi-bench-$tool.raw"; rm -f "$out"
    t[$tool-conv]+="$(time_of "${cmd[@]}" convert -f raw -O raw "$url" "$out") "
    cmp -s "$dir/lun.img" "$out" || { echo "$tool: convert differs" >&2; exit 1; }
    rm -f "$out"
  done
done
best() { tr ' ' '\n' <<<"$1" | grep . | sort -n | head -1; }
printf '%-44s %12s %12s %7s\n' "iSCSI LUN ($size MiB, tgt on loopback)" "blk" "qemu-img" "ratio"
row() { # name, key, unit count, unit name
  local b q; b="$(best "${t[blk-$2]}")"; q="$(best "${t[qemu-$2]}")"
  printf '%-44s %12s %12s %7.2f\n' "$1" "$(awk "BEGIN{printf \"%.0f $4\", $3 / $b}")" \
    "$(awk "BEGIN{printf \"%.0f $4\", $3 / $q}")" "$(echo "$q / $b" | bc -l)"
}
row "4k read QD16 (bench -c $count -d 16 -s 4k)" 4k "$count" "IOPS"
row "1M sequential read QD1 (bench -d 1 -s 1M)" 1m "$size" "MiB/s"
row "convert whole LUN to raw (defaults)" conv "$size" "MiB/s"
