#!/usr/bin/env bash
# One image format side by side on one fully allocated 1 GiB image of random data, made by qemu-img:
# `blk convert` FORMAT -> raw against `qemu-img convert` (best of three each, alternating, with CPU time), then
# `blk bench` against `qemu-img bench` with 4 KiB reads at QD1 scattered over the image (a step of one block + 4 KiB,
# so every read lands in another block of the format's table), and against fio's psync engine reading the image file
# itself (4 KiB random reads over the whole file: plain pread, the floor).
# The read-only formats' images are written from the same random data by their own tools: cloop by
# `create_compressed_fs -B 65536` (cloop-utils), dmg by bench/make-dmg.py (zlib chunks of 1 MiB).
#   bench/format-compare.sh vdi|vpc|qed|vhdx|qcow|parallels|cloop|dmg
#   (needs qemu-utils and fio, cloop-utils for cloop; run it under the build lock so no compiler shares the cores)
set -euo pipefail
format="${1:?usage: bench/format-compare.sh FORMAT}"
data_offset=""
case "$format" in
  vdi)  ext=vdi;  block=$((1 << 20)); data_offset=4608 ;;   # 1 MiB blocks; qemu-img puts the data area at 4 KiB + 512
  vpc)  ext=vhd;  block=$((2 << 20)) ;;   # 2 MiB blocks
  qed)  ext=qed;  block=$((1 << 20)) ;;   # 64 KiB clusters; 1 MiB apart
  qcow) ext=qcow; block=$((1 << 20)) ;;   # 4 KiB clusters; 1 MiB apart (an L2 table maps 2 MiB)
  vhdx) ext=vhdx; block=$((32 << 20)) ;;  # 32 MiB blocks at 1 GiB
  parallels) ext=prl; block=$((1 << 20)) ;;  # 1 MiB clusters
  cloop) ext=cloop; block=$((64 << 10)) ;; # 64 KiB compressed blocks
  dmg)  ext=dmg;  block=$((1 << 20)) ;;   # 1 MiB zlib chunks
  *) echo "format-compare.sh: no settings for '$format'" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-$format-bench}"
mkdir -p "$dir"
image="$dir/random-1g.$ext"
if [ ! -f "$image" ]; then
  dd if=/dev/urandom of="$dir/random-1g.raw" bs=1M count=1024 status=none
  case "$format" in
    cloop) create_compressed_fs -q -B 65536 "$dir/random-1g.raw" "$image" > /dev/null 2>&1 ;;  # it prints progress even with -q
    dmg) python3 "$root/bench/make-dmg.py" --chunk-sectors 2048 "$dir/random-1g.raw" "$image" ;;
    *) qemu-img convert -O "$format" "$dir/random-1g.raw" "$image" ;;
  esac
  rm -f "$dir/random-1g.raw"
fi
cat "$image" > /dev/null
# blk as it ships: Native AOT (bench/publish-blk.sh; BLK_BUILD=r2r or jit for the other builds).
blk=("$("$root/bench/publish-blk.sh" "$dir/blk-publish")")

timed() { # prints "real user+sys" of "$@"
  /usr/bin/time -f "%e %U %S" "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%s %.2f\n", $1, $2 + $3}'
}
best_b=""; best_q=""; cpu_b=""; cpu_q=""
for _ in 1 2 3; do
  rm -f "$dir/b.raw" "$dir/q.raw"
  read -r t c < <(timed "${blk[@]}" convert -f "$format" -O raw "$image" "$dir/b.raw")
  if [ -z "$best_b" ] || awk "BEGIN{exit !($t < $best_b)}"; then best_b="$t"; cpu_b="$c"; fi
  read -r t c < <(timed qemu-img convert -f "$format" -O raw "$image" "$dir/q.raw")
  if [ -z "$best_q" ] || awk "BEGIN{exit !($t < $best_q)}"; then best_q="$t"; cpu_q="$c"; fi
done
cmp "$dir/b.raw" "$dir/q.raw"
rm -f "$dir/b.raw" "$dir/q.raw"
printf 'convert 1 GiB %s -> raw: blk %ss (cpu %ss), qemu-img %ss (cpu %ss), speed-up %.2fx\n' \
  "$format" "$best_b" "$cpu_b" "$best_q" "$cpu_q" "$(awk "BEGIN{print $best_q / $best_b}")"

seconds() { sed -n 's/^Run completed in \([0-9.]*\) seconds\./\1/p'; }
best() { local b=""; for _ in 1 2 3; do t="$("$@" | seconds)"; if [ -z "$b" ] || awk "BEGIN{exit !($t < $b)}"; then b="$t"; fi; done; echo "$b"; }
count=200000
# A compressed format inflates a whole chunk for each scattered read (64 KiB cloop blocks, 1 MiB dmg chunks).
case "$format" in cloop) count=20000 ;; dmg) count=2000 ;; esac
step=$(( block + 4096 ))
b="$(best "${blk[@]}" bench -f "$format" -c "$count" -d 1 -s 4k -S "$step" -i inline "$image")"
q="$(best qemu-img bench -f "$format" -c "$count" -d 1 -s 4k -S "$step" -i io_uring "$image")"
printf 'bench 4k read QD1 scattered (-S %d) on 1 GiB %s: blk -i inline %.0f req/s, qemu-img -i io_uring %.0f req/s, ratio %.2f\n' \
  "$step" "$format" "$(awk "BEGIN{print $count / $b}")" "$(awk "BEGIN{print $count / $q}")" "$(awk "BEGIN{print $q / $b}")"

# fio psync on the image file: 4 KiB reads at QD1 at random places of the whole file, page cache kept. (Not fio's
# `rw=read:SKIP` stride: fio restarts it at offset 0 at the end of the file, so it would read the same few pages on
# every pass, 32 of them for vhdx's 32 MiB blocks, where blk's step drifts over the whole image as qemu-img's does.)
fio_iops() {
  fio --name=psync --filename="$image" --readonly --ioengine=psync --rw=randread --norandommap --randrepeat=0 \
    --offset="${FIO_OFFSET:-0}" \
    --bs=4k --iodepth=1 --invalidate=0 --time_based --runtime=5 --output-format=json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["iops"])'
}
f=""
for _ in 1 2 3; do i="$(fio_iops)"; if [ -z "$f" ] || awk "BEGIN{exit !($i > $f)}"; then f="$i"; fi; done
printf 'fio psync 4k random read QD1 over the %s file: %.0f IOPS; blk / fio %.2f\n' \
  "$format" "$f" "$(awk "BEGIN{print ($count / $b) / $f}")"

# Where the format's data area does not start on a page (vdi), every 4 KiB guest read spans two pages of the file:
# fio again with its reads shifted by the same offset, the like-for-like floor.
if [ -n "${data_offset:-}" ]; then
  f=""
  for _ in 1 2 3; do i="$(FIO_OFFSET="$data_offset" fio_iops)"; if [ -z "$f" ] || awk "BEGIN{exit !($i > $f)}"; then f="$i"; fi; done
  printf 'fio psync 4k random read QD1 at offset %d + k*4k: %.0f IOPS; blk / fio %.2f\n' \
    "$data_offset" "$f" "$(awk "BEGIN{print ($count / $b) / $f}")"
fi
