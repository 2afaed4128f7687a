#!/usr/bin/env bash
# Seeds fuzz/corpus/vpc-image with small VHD files made by qemu-img 7.2: an empty dynamic disk, a dynamic disk with
# 4 KiB blocks (patched in, so that written blocks stay small) holding data, a force_size one, and a fixed one.
set -euo pipefail
out="$(dirname "$0")/corpus/vpc-image"
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
qemu-img create -q -f vpc "$out/empty-4m.vhd" 4M
qemu-img create -q -f vpc -o subformat=fixed "$out/fixed-64k.vhd" 64k
qemu-img create -q -f vpc -o force_size=on "$out/force-size-1m.vhd" 1M
# 16 KiB disk, four 4 KiB blocks: block size at 0x220, BAT entries at 0x21c (the BAT sector's padding is all ones).
qemu-img create -q -f vpc -o force_size=on "$tmp/small.vhd" 16k
printf '\x00\x00\x00\x04\x00\x00\x10\x00' | dd of="$tmp/small.vhd" bs=1 seek=$((0x21c)) conv=notrunc status=none
qemu-io -f vpc -c 'write -P 0x61 0 4k' -c 'write -P 0x62 9000 3000' "$tmp/small.vhd" >/dev/null
cp "$tmp/small.vhd" "$out/allocated-4k-blocks.vhd"
