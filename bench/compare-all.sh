#!/usr/bin/env bash
# Every workload of the performance issue, blk against qemu-img 7.2 on the same files: a 1 GiB fully allocated qcow2
# image of random data in the page cache, fresh 1 GiB images for allocating writes, and a compressible raw file for
# convert -c. Each pair runs alternately (blk, qemu-img, blk, ...), three times; the best run of each is kept and the
# ratio is blk's rate over qemu-img's (> 1: blk is faster). qemu-img bench uses its best engine for the workload.
#   bench/compare-all.sh            (needs qemu-utils and fio; about 4 minutes; run it under the build lock,
#                                    flock /tmp/block-build.lock bench/compare-all.sh, so no build shares the cores)
# Environment: BENCH_DIR (inputs and fresh images, default /tmp/blk-bench), BENCH_OUT (convert outputs, default
# /dev/shm/blk-bench-out),
# COUNT (read requests per run, default 400000).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}"
out="${BENCH_OUT:-/dev/shm/blk-bench-out}"
count="${COUNT:-400000}"
mkdir -p "$dir" "$out"

# blk as it ships: published ReadyToRun (precompiled), so that a one-second run is not spent in the JIT.
publish="$dir/blk-publish"
dotnet publish "$root/Block.Cli/Block.Cli.csproj" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
  -o "$publish" -nologo -v quiet -clp:ErrorsOnly >/dev/null
blk=(dotnet "$publish/blk.dll")

raw="$dir/random-1g.raw"
qcow2="$dir/random-1g.qcow2"
text="$dir/compressible-128m.raw"
if [ ! -f "$raw" ] || [ "$(stat -c %s "$raw")" != 1073741824 ]; then
  head -c 1G /dev/urandom > "$raw"
  rm -f "$qcow2"
fi
[ -f "$qcow2" ] || qemu-img convert -f raw -O qcow2 "$raw" "$qcow2"
if [ ! -f "$text" ]; then
  # A quarter random (stored uncompressed), a quarter zeroes (skipped), half text-like data (compresses about 3:1).
  python3 - "$text" 128 <<'PY'
import random, sys
random.seed(1)
words = [b'block', b'layer', b'qemu', b'qcow2', b'cluster', b'table', b'refcount', b'data', b'zero']
with open(sys.argv[1], 'wb') as f:
    for i in range(int(sys.argv[2])):
        k = i % 4
        if k == 0:
            f.write(random.randbytes(1 << 20))
        elif k == 1:
            f.write(bytes(1 << 20))
        else:
            b = bytearray()
            while len(b) < (1 << 20):
                b += random.choice(words) + b' ' + str(random.randint(0, 99999)).encode()
            f.write(bytes(b[:1 << 20]))
PY
fi
cat "$raw" "$qcow2" "$text" > /dev/null

bench_seconds() { "$@" | sed -n 's/^Run completed in \([0-9.]*\) seconds\./\1/p'; }
wall_seconds() { # wall time of "$@" (output discarded)
  local start end
  start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N)
  awk "BEGIN{printf \"%.3f\", $end - $start}"
}
min() { if [ -z "$1" ] || awk "BEGIN{exit !($2 < $1)}"; then echo "$2"; else echo "$1"; fi; }
fresh() { rm -f "$1"; qemu-img create -q -f qcow2 "$1" 1G; }

printf '%-56s %14s %14s %7s\n' "workload" "blk" "qemu-img" "ratio"
row() { # name, unit, work per run, blk seconds, qemu seconds
  printf '%-56s %14s %14s %7s\n' "$1" \
    "$(awk "BEGIN{printf \"%.0f %s\", $3 / $4, \"$2\"}")" "$(awk "BEGIN{printf \"%.0f %s\", $3 / $5, \"$2\"}")" \
    "$(awk "BEGIN{printf \"%.2f\", $5 / $4}")"
}

bench_pair() { # name, count, blk args, qemu args (bench on the qcow2 image)
  local b="" q="" t
  for _ in 1 2 3; do
    t=$(bench_seconds "${blk[@]}" bench -f qcow2 -c "$2" $3 "$qcow2"); b=$(min "$b" "$t")
    t=$(bench_seconds qemu-img bench -f qcow2 -c "$2" $4 "$qcow2"); q=$(min "$q" "$t")
  done
  row "$1" "req/s" "$2" "$b" "$q"
}

write_pair() { # name, blk args, qemu args: 16000 allocating 4 KiB writes, one per 64 KiB cluster, into fresh images
  local b="" q="" t img="$dir/fresh.qcow2" n=16000
  for _ in 1 2 3; do
    fresh "$img"; t=$(bench_seconds "${blk[@]}" bench -w -f qcow2 -c $n -s 4k -S 64k $2 "$img"); b=$(min "$b" "$t")
    fresh "$img"; t=$(bench_seconds qemu-img bench -w -f qcow2 -c $n -s 4k -S 64k $3 "$img"); q=$(min "$q" "$t")
  done
  rm -f "$img"
  row "$1" "req/s" "$n" "$b" "$q"
}

convert_pair() { # name, MiB of input, convert args (source and target)
  local b="" q="" t
  for _ in 1 2 3; do
    rm -f "$out/target"; t=$(wall_seconds "${blk[@]}" convert $3 "$out/target"); b=$(min "$b" "$t")
    rm -f "$out/target"; t=$(wall_seconds qemu-img convert $3 "$out/target"); q=$(min "$q" "$t")
  done
  rm -f "$out/target"
  row "$1" "MiB/s" "$2" "$b" "$q"
}

bench_pair "4 KiB read QD1 (blk inline, qemu io_uring)" "$count" "-d 1 -i inline" "-d 1 -i io_uring"
bench_pair "4 KiB read QD16 (blk io_uring, qemu io_uring)" "$count" "-d 16 -i io_uring" "-d 16 -i io_uring"
bench_pair "4 KiB read QD16 (blk inline x16 threads, qemu io_uring)" "$count" "-d 16 -i inline" "-d 16 -i io_uring"
bench_pair "64 KiB seq read QD16 (blk io_uring, qemu io_uring)" $((count / 8)) "-d 16 -s 64k -i io_uring" "-d 16 -s 64k -i io_uring"
write_pair "alloc 4 KiB write QD1 (blk inline, qemu io_uring)" "-d 1 -i inline" "-d 1 -i io_uring"
write_pair "alloc 4 KiB write QD16 (blk io_uring, qemu io_uring)" "-d 16 -i io_uring" "-d 16 -i io_uring"
write_pair "alloc 4 KiB write QD16 (blk inline x16, qemu io_uring)" "-d 16 -i inline" "-d 16 -i io_uring"
convert_pair "convert qcow2 -> raw (1 GiB)" 1024 "-f qcow2 -O raw $qcow2"
convert_pair "convert raw -> qcow2 (1 GiB)" 1024 "-f raw -O qcow2 $raw"
convert_pair "convert -c raw -> qcow2 (128 MiB, compressible)" 128 "-c -f raw -O qcow2 $text"

# The floor: fio's plain pread of the same file, the same sequential 4 KiB steps, QD1, both in steady state (fio runs
# 3 s, blk four times the read count).
qd1=""
for _ in 1 2 3; do
  t=$(bench_seconds "${blk[@]}" bench -f qcow2 -c $((count * 4)) -d 1 -i inline "$qcow2"); qd1=$(min "$qd1" "$t")
done
p=0
for _ in 1 2 3; do
  i=$(fio --name=p --filename="$qcow2" --ioengine=psync --invalidate=0 --rw=read --bs=4k --iodepth=1 \
        --runtime=3 --time_based --size=1G --output-format=terse 2>/dev/null | awk -F';' '{print $8}')
  [ "$i" -gt "$p" ] && p="$i"
done
printf '%-56s %14s %14s %7s\n' "4 KiB read QD1: blk inline vs fio psync (pread)" \
  "$(awk "BEGIN{printf \"%.0f req/s\", $count * 4 / $qd1}")" "$p req/s" "$(awk "BEGIN{printf \"%.2f\", $count * 4 / $qd1 / $p}")"

# Scaling: random 4 KiB reads of the qcow2 image from one and from two submitting threads (inline engine).
one=""; two=""
for _ in 1 2 3; do
  t=$(bench_seconds "${blk[@]}" bench -f qcow2 -c "$count" -d 1 -i inline --pattern-random "$qcow2"); one=$(min "$one" "$t")
  t=$(bench_seconds "${blk[@]}" bench -f qcow2 -c "$count" -d 2 -i inline --pattern-random "$qcow2"); two=$(min "$two" "$t")
done
printf '%-56s %14s %14s %7s\n' "random 4 KiB read: blk 2 threads | 1 thread (inline)" \
  "$(awk "BEGIN{printf \"%.0f req/s\", $count / $two}")" "$(awk "BEGIN{printf \"%.0f req/s\", $count / $one}")" \
  "$(awk "BEGIN{printf \"%.2f\", $one / $two}")"
