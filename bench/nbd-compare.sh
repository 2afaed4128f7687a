#!/usr/bin/env bash
# NBD side by side: fio's nbd engine (libnbd) against `blk nbd` and against `qemu-nbd`, each serving the same 1 GiB
# fully allocated qcow2 image of random data on a unix socket: 4 KiB random reads at QD1 and QD16, 4 KiB random
# writes at QD16, 1 MiB sequential reads at QD1. Then `blk convert` against `qemu-img convert` from one `nbd:` source
# (qemu-nbd -r serving the same image) to raw in /dev/shm. Each pair runs alternately RUNS times (3), best kept;
# ratio = blk's rate / qemu's.
#   bench/nbd-compare.sh          (needs qemu-utils and fio; run it under the build lock so no compiler shares the cores)
#   SECONDS_PER_JOB=5 RUNS=3 BENCH_DIR=/tmp/blk-nbd-bench
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-nbd-bench}"
runs="${RUNS:-3}"
seconds="${SECONDS_PER_JOB:-5}"
mkdir -p "$dir"
image="$dir/random-1g.qcow2"
if [ ! -f "$image" ]; then
  dd if=/dev/urandom of="$dir/random-1g.raw" bs=1M count=1024 status=none
  qemu-img convert -O qcow2 "$dir/random-1g.raw" "$image"
  rm -f "$dir/random-1g.raw"
fi
cat "$image" > /dev/null
# blk as it ships: Native AOT (bench/publish-blk.sh; BLK_BUILD=r2r or jit for the other builds).
blk="$("$root/bench/publish-blk.sh" "$dir/blk-publish")"
sock="$dir/nbd.sock"
server=""
stop_server() { if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""; fi; }
trap stop_server EXIT
start_server() { # start_server COMMAND... : runs it in the background and waits for the socket
  rm -f "$sock"
  "$@" & server=$!
  for _ in $(seq 600); do [ -S "$sock" ] && return 0; sleep 0.1; done
  echo "nbd-compare: server did not start: $*" >&2; exit 1
}
# fio_rate RW BS QD -> IOPS (MiB/s for 1 MiB blocks) of the direction the job does
fio_rate() {
  fio --name=nbd --ioengine=nbd --uri="nbd+unix:///?socket=$sock" --rw="$1" --bs="$2" --iodepth="$3" \
      --time_based --runtime="$seconds" --output-format=json 2>/dev/null | python3 -c '
import json, sys
text = sys.stdin.read(); job = json.loads(text[text.index("{"):])["jobs"][0]
side = job["write"] if "write" in sys.argv[1] else job["read"]
print("%.1f" % (side["bw"] / 1024 if sys.argv[2] == "1m" else side["iops"]))' "$1" "$2"
}
workloads=("randread 4k 1" "randread 4k 16" "randwrite 4k 16" "read 1m 1")
declare -A best_b best_q
better() { [ -z "$2" ] || awk "BEGIN{exit !($1 > $2)}"; }
for _ in $(seq "$runs"); do
  for who in blk qemu; do
    if [ "$who" = blk ]; then start_server "$blk" nbd -t -f qcow2 -k "$sock" "$image"
    else start_server qemu-nbd -t -f qcow2 -k "$sock" "$image"; fi
    for w in "${workloads[@]}"; do
      read -r rw bs qd <<<"$w"
      r="$(fio_rate "$rw" "$bs" "$qd")"
      if [ "$who" = blk ]; then better "$r" "${best_b[$w]:-}" && best_b[$w]="$r"
      else better "$r" "${best_q[$w]:-}" && best_q[$w]="$r"; fi
    done
    stop_server
  done
done
printf '%-34s %12s %12s %7s\n' "fio nbd engine, unix socket" "blk nbd" "qemu-nbd" ratio
for w in "${workloads[@]}"; do
  read -r rw bs qd <<<"$w"
  unit=IOPS; [ "$bs" = 1m ] && unit=MiB/s
  printf '%-34s %12s %12s %7.2f\n' "$bs $rw QD$qd ($unit)" "${best_b[$w]}" "${best_q[$w]}" "$(awk "BEGIN{print ${best_b[$w]} / ${best_q[$w]}}")"
done

# convert from one nbd: source (qemu-nbd, read-only, persistent) to raw in /dev/shm.
timed() { # prints "real user+sys" of "$@"
  /usr/bin/time -f "%e %U %S" "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%s %.2f\n", $1, $2 + $3}'
}
start_server qemu-nbd -t -r -f qcow2 -k "$sock" "$image"
source="nbd:unix:$sock"
out="${SHM_DIR:-/dev/shm}"
cb=""; cq=""; cpu_b=""; cpu_q=""
for _ in $(seq "$runs"); do
  rm -f "$out/nbd-b.raw" "$out/nbd-q.raw"
  read -r t c < <(timed "$blk" convert -O raw "$source" "$out/nbd-b.raw")
  if [ -z "$cb" ] || awk "BEGIN{exit !($t < $cb)}"; then cb="$t"; cpu_b="$c"; fi
  read -r t c < <(timed qemu-img convert -O raw "$source" "$out/nbd-q.raw")
  if [ -z "$cq" ] || awk "BEGIN{exit !($t < $cq)}"; then cq="$t"; cpu_q="$c"; fi
done
stop_server
cmp "$out/nbd-b.raw" "$out/nbd-q.raw"
rm -f "$out/nbd-b.raw" "$out/nbd-q.raw"
printf 'convert 1 GiB from nbd: (qemu-nbd) -> raw: blk %ss (cpu %ss), qemu-img %ss (cpu %ss), speed-up %.2fx\n' \
  "$cb" "$cpu_b" "$cq" "$cpu_q" "$(awk "BEGIN{print $cq / $cb}")"
