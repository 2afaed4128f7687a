#!/usr/bin/env bash
# LUKS side by side: `blk convert` of a LUKS image, and of a qcow2 image with LUKS encryption, to raw against
# `qemu-img convert` of the same image (tmpfs, so the disk does not set the pace), best of five runs each, alternating;
# and OpenSSL's AES-XTS speed on one core for the
# BenchmarkDotNet figures (dotnet run -c Release --project bench -- --filter '*AesXts*').
#   bench/luks-compare.sh [size]      (needs qemu-utils and openssl; default size 1G)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
size="${1:-1G}"
dir="${LUKS_BENCH_DIR:-/dev/shm/blk-luks-bench}"
mkdir -p "$dir"
dotnet build "$root/Block.Cli/Block.Cli.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly >/dev/null
blk=(dotnet "$root/Block.Cli/bin/Release/net10.0/blk.dll")
secret=(--object secret,id=s0,data=benchmark)
image="$dir/image.luks"
qcow2="$dir/image.qcow2"
if [ ! -f "$image" ] || [ ! -f "$qcow2" ]; then
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
compare luks "driver=luks,key-secret=s0,file.filename=$image"
compare qcow2+luks "driver=qcow2,encrypt.key-secret=s0,file.filename=$qcow2"
openssl speed -seconds 3 -evp aes-256-xts 2>/dev/null | tail -1
openssl speed -seconds 3 -evp aes-128-xts 2>/dev/null | tail -1
