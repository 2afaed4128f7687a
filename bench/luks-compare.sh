#!/usr/bin/env bash
# LUKS side by side: `blk convert` of a LUKS image, and of a qcow2 image with LUKS encryption, to raw against
# `qemu-img convert` of the same image (tmpfs, so the disk does not set the pace), best of five runs each, alternating;
# `blk io` against `qemu-io` opening a LUKS image qemu-img made with iter-time=100 and reading one sector (the unlock's
# two PBKDF2 runs are most of it); and OpenSSL's AES-XTS speed on one core for the
# BenchmarkDotNet figures (dotnet run -c Release --project bench -- --filter '*AesXts*').
#   bench/luks-compare.sh [size]      (needs qemu-utils and openssl; default size 1G)
#   ONLY=open bench/luks-compare.sh   the open line alone
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
size="${1:-1G}"
dir="${LUKS_BENCH_DIR:-/dev/shm/blk-luks-bench}"
mkdir -p "$dir"
# blk as it ships: Native AOT (bench/publish-blk.sh; BLK_BUILD=r2r or jit for the other builds).
blk=("$("$root/bench/publish-blk.sh" "$dir/blk-publish")")
secret=(--object secret,id=s0,data=benchmark)
image="$dir/image.luks"
qcow2="$dir/image.qcow2"
only="${ONLY:-}"
if [ "$only" != open ] && { [ ! -f "$image" ] || [ ! -f "$qcow2" ]; }; then
  head -c "$(numfmt --from=iec "$size")" /dev/urandom > "$dir/random.raw"
  rm -f "$image" "$qcow2"
  "${blk[@]}" convert "${secret[@]}" -f raw "$dir/random.raw" -O luks -o key-secret=s0,iter-time=10 "$image"
  "${blk[@]}" convert "${secret[@]}" -f raw "$dir/random.raw" -O qcow2 -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 "$qcow2"
  rm -f "$dir/random.raw"
fi

seconds() { # wall seconds of "$@"
  local start end
  start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N)
  awk "BEGIN{printf \"%.3f\", $end - $start}"
}
compare() { # compare LABEL IMAGE-OPTS
  local best_b="" best_q="" t
  for _ in 1 2 3 4 5; do
    rm -f "$dir/out.raw"; t=$(seconds "${blk[@]}" convert "${secret[@]}" --image-opts "$2" -O raw "$dir/out.raw")
    if [ -z "$best_b" ] || awk "BEGIN{exit !($t < $best_b)}"; then best_b=$t; fi
    rm -f "$dir/out.raw"; t=$(seconds qemu-img convert "${secret[@]}" --image-opts "$2" -O raw "$dir/out.raw")
    if [ -z "$best_q" ] || awk "BEGIN{exit !($t < $best_q)}"; then best_q=$t; fi
  done
  rm -f "$dir/out.raw"
  printf 'convert %s -> raw (%s, aes-256-xts): blk %ss, qemu-img %ss, ratio %s\n' "$1" "$size" "$best_b" "$best_q" \
    "$(awk "BEGIN{printf \"%.2f\", $best_q / $best_b}")"
}
open_compare() { # the unlock: open a LUKS image made by qemu-img with iter-time=100, read one sector
  local opened="$dir/open.luks" opts best_b="" best_q="" t
  # qemu-img's calibration now and then reads no CPU time and gives up ("Unable to get accurate CPU usage"): ask again.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -f "$opened" ] || qemu-img create -q -f luks "${secret[@]}" -o key-secret=s0,iter-time=100 "$opened" 256M 2>/dev/null || true
  done
  opts="driver=luks,key-secret=s0,file.filename=$opened"
  for _ in 1 2 3 4 5; do
    t=$(seconds "${blk[@]}" io "${secret[@]}" --image-opts "$opts" -c 'read 0 512')
    if [ -z "$best_b" ] || awk "BEGIN{exit !($t < $best_b)}"; then best_b=$t; fi
    t=$(seconds qemu-io "${secret[@]}" --image-opts "$opts" -c 'read 0 512')
    if [ -z "$best_q" ] || awk "BEGIN{exit !($t < $best_q)}"; then best_q=$t; fi
  done
  printf 'open + read 512 B (qemu-img iter-time=100: %s): blk io %ss, qemu-io %ss, ratio %s\n' \
    "$(qemu-img info "$opened" | awk '/^ +iters:/{s=$2} /master key iters:/{m=$4} END{printf "%s + %s iterations", s, m}')" \
    "$best_b" "$best_q" "$(awk "BEGIN{printf \"%.2f\", $best_q / $best_b}")"
}
open_compare
[ "$only" = open ] && exit 0
compare luks "driver=luks,key-secret=s0,file.filename=$image"
compare qcow2+luks "driver=qcow2,encrypt.key-secret=s0,file.filename=$qcow2"
openssl speed -seconds 3 -evp aes-256-xts 2>/dev/null | tail -1
openssl speed -seconds 3 -evp aes-128-xts 2>/dev/null | tail -1
