#!/usr/bin/env bash
# Seeds fuzz/corpus/qcow-image with small qcow (v1) files made by qemu-img 7.2: an empty disk, one with data in two L2
# tables, one over a backing file (512-byte clusters; the target never opens the file it names), one with compressed
# clusters, and one with a 64 KiB-cluster header patched in (tables of 512 bytes).
set -euo pipefail
out="$(dirname "$0")/corpus/qcow-image"
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
qemu-img create -q -f qcow "$out/empty-1m.qcow" 1M
qemu-img create -q -f qcow "$out/allocated.qcow" 4M
qemu-io -f qcow -c 'write -P 0x61 0 4k' -c 'write -P 0x62 2M 8k' -c 'write -P 0x63 70000 300' "$out/allocated.qcow" >/dev/null
qemu-img create -q -f raw "$tmp/base.raw" 1M
qemu-img create -q -f qcow -b "$tmp/base.raw" -F raw "$out/backing.qcow" 1M
qemu-io -f qcow -c 'write -P 0x64 512 1k' "$out/backing.qcow" >/dev/null
qemu-img create -q -f raw "$tmp/in.raw" 64k
qemu-io -f raw -c 'write -P 0x65 0 12k' -c 'write -P 0x66 40k 2k' "$tmp/in.raw" >/dev/null
# qemu-img 7.2 exits 1 after writing a compressed qcow image whole; the image is complete.
qemu-img convert -c -f raw -O qcow "$tmp/in.raw" "$out/compressed.qcow" || true
qemu-img compare -f raw -F qcow "$tmp/in.raw" "$out/compressed.qcow" >/dev/null
qemu-img create -q -f qcow "$out/clusters-64k.qcow" 1M
printf '\x10\x06' | dd of="$out/clusters-64k.qcow" bs=1 seek=32 conv=notrunc status=none
