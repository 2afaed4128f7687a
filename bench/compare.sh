#!/usr/bin/env bash
# Side by side on one page-cached raw file: blk bench against qemu-img bench (each with its best engine for the
# workload) and fio's plain pread, alternating tools, best of three runs each. Prints requests/s and the ratios.
#   bench/compare.sh [count]          (needs qemu-utils and fio: sudo apt-get install -y qemu-utils fio)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
count="${1:-400000}"
file="${BENCH_FILE:-/tmp/blk-bench-1g.raw}"
if [ ! -f "$file" ] || [ "$(stat -c %s "$file")" != 1073741824 ]; then
  dd if=/dev/urandom of="$file" bs=1M count=1024 status=none
fi
cat "$file" > /dev/null
dotnet build "$root/Block.Cli/Block.Cli.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly >/dev/null
blk=(dotnet "$root/Block.Cli/bin/Release/net10.0/blk.dll")

seconds() { sed -n 's/^Run completed in \([0-9.]*\) seconds\./\1/p'; }
best() { # best (lowest) time of three runs of "$@"
  local b=""
  for _ in 1 2 3; do
    t="$("$@" | seconds)"
    if [ -z "$b" ] || awk "BEGIN{exit !($t < $b)}"; then b="$t"; fi
  done
  echo "$b"
}
fio_iops() { # best IOPS of three fio runs: rw bs depth engine
  local b=0
  for _ in 1 2 3; do
    i="$(fio --name=p --filename="$file" --ioengine="$4" --invalidate=0 --rw="$1" --bs="$2" --iodepth="$3" \
          --runtime=3 --time_based --size=1G --output-format=terse 2>/dev/null | awk -F';' '{print $8}')"
    [ "$i" -gt "$b" ] && b="$i"
  done
  echo "$b"
}
rate() { awk "BEGIN{printf \"%.0f\", $count / $1}"; }
ratio() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }

printf '%-34s %12s %12s %8s\n' "workload (count=$count)" "blk req/s" "qemu req/s" "ratio"
row() { # name, blk args, qemu args
  local name="$1"; shift
  local b q
  b="$(best "${blk[@]}" bench -f raw -c "$count" $1 "$file")"
  q="$(best qemu-img bench -f raw -c "$count" $2 "$file")"
  printf '%-34s %12s %12s %8s\n' "$name" "$(rate "$b")" "$(rate "$q")" "$(ratio "$q" "$b")"
}
row "4k read QD1 (inline vs io_uring)" "-d 1 -i inline" "-d 1 -i io_uring"
row "4k read QD1 (threads vs threads)" "-d 1 -i threads" "-d 1 -i threads"
row "4k read QD16 (threads vs io_uring)" "-d 16 -i threads" "-d 16 -i io_uring"
row "4k read QD16 (inline vs io_uring)" "-d 16 -i inline" "-d 16 -i io_uring"
row "64k read QD16 (threads vs io_uring)" "-d 16 -s 64k -i threads" "-d 16 -s 64k -i io_uring"

b="$(best "${blk[@]}" bench -f raw -c "$count" -d 1 -i inline "$file")"
p="$(fio_iops read 4k 1 psync)"
printf '%-34s %12s %12s %8s\n' "4k read QD1: blk inline vs pread" "$(rate "$b")" "$p" "$(awk "BEGIN{printf \"%.2f\", $(rate "$b") / $p}")"

# qcow2: the same data as a fully allocated qcow2 image (64 KiB clusters), and allocating writes into fresh images.
qfile="${file%.raw}.qcow2"
if [ ! -f "$qfile" ] || [ "$qfile" -ot "$file" ]; then
  qemu-img convert -f raw -O qcow2 "$file" "$qfile"
fi
cat "$qfile" > /dev/null
qrow() { # name, blk args, qemu args
  local name="$1"; shift
  local b q
  b="$(best "${blk[@]}" bench -f qcow2 -c "$count" $1 "$qfile")"
  q="$(best qemu-img bench -f qcow2 -c "$count" $2 "$qfile")"
  printf '%-34s %12s %12s %8s\n' "$name" "$(rate "$b")" "$(rate "$q")" "$(ratio "$q" "$b")"
}
echo
printf '%-34s %12s %12s %8s\n' "qcow2 workload (count=$count)" "blk req/s" "qemu req/s" "ratio"
qrow "qcow2 4k read QD1 (inline/io_uring)" "-d 1 -i inline" "-d 1 -i io_uring"
qrow "qcow2 4k read QD16 (threads/io_uring)" "-d 16 -i threads" "-d 16 -i io_uring"
qrow "qcow2 64k read QD16 (threads/io_uring)" "-d 16 -s 64k -i threads" "-d 16 -s 64k -i io_uring"

# Allocating 4 KiB writes, one per new cluster, into a fresh 1 GiB image each run (16000 requests).
fresh="/tmp/blk-bench-fresh.qcow2"
wbest() { # best time of three runs on fresh images: tool args...
  local b=""
  for _ in 1 2 3; do
    rm -f "$fresh"; qemu-img create -q -f qcow2 "$fresh" 1G
    t="$("$@" "$fresh" | seconds)"
    if [ -z "$b" ] || awk "BEGIN{exit !($t < $b)}"; then b="$t"; fi
  done
  echo "$b"
}
wcount=16000
b="$(wbest "${blk[@]}" bench -w -f qcow2 -c "$wcount" -s 4k -S 64k -d 1 -i inline)"
q="$(wbest qemu-img bench -w -f qcow2 -c "$wcount" -s 4k -S 64k -d 1 -i io_uring)"
printf '%-34s %12s %12s %8s\n' "qcow2 alloc 4k write/cluster QD1" "$(awk "BEGIN{printf \"%.0f\", $wcount / $b}")" "$(awk "BEGIN{printf \"%.0f\", $wcount / $q}")" "$(ratio "$q" "$b")"
rm -f "$fresh"
