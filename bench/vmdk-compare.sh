#!/usr/bin/env bash
# VMDK side by side: `blk convert` raw -> streamOptimized against `qemu-img convert` on the same input (best of three
# runs each, alternating, with CPU time), then `blk bench` against `qemu-img bench` reading a fully allocated
# monolithicSparse image (4 KiB QD1 and 64 KiB QD1, qemu-img bench's sequential pattern).
#   bench/vmdk-compare.sh [input-MiB]          (needs qemu-utils)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mib="${1:-512}"
dir="${BENCH_DIR:-/tmp/blk-vmdk-bench}"
mkdir -p "$dir"
input="$dir/mixed-$mib.raw"
if [ ! -f "$input" ]; then
  # A quarter each: random (incompressible), zeroes (skipped), and two kinds of text-like data (compressible).
  python3 - "$input" "$mib" <<'PY'
import os, random, sys
random.seed(1)
words = [b'block', b'layer', b'qemu', b'vmdk', b'grain', b'table', b'stream', b'data', b'zero']
with open(sys.argv[1], 'wb') as f:
    for i in range(int(sys.argv[2])):
        k = i % 4
        if k == 0:
            f.write(os.urandom(1 << 20))
        elif k == 1:
            f.write(bytes(1 << 20))
        else:
            b = bytearray()
            while len(b) < (1 << 20):
                b += random.choice(words) + b' ' + str(random.randint(0, 99999)).encode()
            f.write(bytes(b[:1 << 20]))
PY
fi
cat "$input" > /dev/null
dotnet build "$root/Block.Cli/Block.Cli.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly >/dev/null
blk=(dotnet "$root/Block.Cli/bin/Release/net10.0/blk.dll")

timed() { # prints "real user+sys" of "$@"
  /usr/bin/time -f "%e %U %S" "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%s %.2f\n", $1, $2 + $3}'
}
best_b=""; best_q=""; cpu_b=""; cpu_q=""
for _ in 1 2 3; do
  rm -f "$dir/b.vmdk" "$dir/q.vmdk"
  read -r t c < <(timed "${blk[@]}" convert -O vmdk -o subformat=streamOptimized "$input" "$dir/b.vmdk")
  if [ -z "$best_b" ] || awk "BEGIN{exit !($t < $best_b)}"; then best_b="$t"; cpu_b="$c"; fi
  read -r t c < <(timed qemu-img convert -O vmdk -o subformat=streamOptimized "$input" "$dir/q.vmdk")
  if [ -z "$best_q" ] || awk "BEGIN{exit !($t < $best_q)}"; then best_q="$t"; cpu_q="$c"; fi
done
qemu-img compare -q "$input" "$dir/b.vmdk"
printf 'convert %d MiB raw -> streamOptimized: blk %ss (cpu %ss, %s bytes), qemu-img %ss (cpu %ss, %s bytes), speed-up %.2fx\n' \
  "$mib" "$best_b" "$cpu_b" "$(stat -c %s "$dir/b.vmdk")" "$best_q" "$cpu_q" "$(stat -c %s "$dir/q.vmdk")" "$(awk "BEGIN{print $best_q / $best_b}")"

sparse="$dir/sparse-1g.vmdk"
if [ ! -f "$sparse" ]; then
  dd if=/dev/urandom of="$dir/random-1g.raw" bs=1M count=1024 status=none
  qemu-img convert -O vmdk "$dir/random-1g.raw" "$sparse"
  rm -f "$dir/random-1g.raw"
fi
cat "$sparse" > /dev/null
seconds() { sed -n 's/^Run completed in \([0-9.]*\) seconds\./\1/p'; }
best() { local b=""; for _ in 1 2 3; do t="$("$@" | seconds)"; if [ -z "$b" ] || awk "BEGIN{exit !($t < $b)}"; then b="$t"; fi; done; echo "$b"; }
for size in 4k 64k; do
  count=200000
  b="$(best "${blk[@]}" bench -f vmdk -c "$count" -d 1 -s "$size" -i inline "$sparse")"
  q="$(best qemu-img bench -f vmdk -c "$count" -d 1 -s "$size" -i io_uring "$sparse")"
  printf 'bench %s read QD1 on 1 GiB monolithicSparse: blk -i inline %.0f req/s, qemu-img -i io_uring %.0f req/s, ratio %.2f\n' \
    "$size" "$(awk "BEGIN{print $count / $b}")" "$(awk "BEGIN{print $count / $q}")" "$(awk "BEGIN{print $q / $b}")"
done
