#!/usr/bin/env bash
# Regenerates corpus/qcow2: small images made by qemu-img/qemu-io 7.2 (512-byte clusters where possible, so that
# a seed is a few KiB), one per feature the qcow2 parser and metadata walk have to handle.
set -euo pipefail
out="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/corpus/qcow2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p "$out"

make() { # name size options qemu-io-commands...
  local name="$1" size="$2" options="$3"
  shift 3
  qemu-img create -q -f qcow2 -o "$options" "$name" "$size"
  local args=()
  for c in "$@"; do args+=(-c "$c"); done
  [ ${#args[@]} -eq 0 ] || qemu-io "${args[@]}" "$name" >/dev/null
  cp "$name" "$out/$name"
}

fill=("write -P 0x11 0 4k" "write -P 0x22 10000 3000" "write -z 16k 2k" "write -c -P 0x33 32k 1k" "discard 20k 1k")
make empty-v3.qcow2 64k cluster_size=512
make empty-v2.qcow2 64k compat=0.10,cluster_size=512
make data-v3.qcow2 64k cluster_size=512 "${fill[@]}"
make data-v2.qcow2 64k compat=0.10,cluster_size=512 "write -P 0x11 0 4k" "write -c -P 0x33 32k 1k" "write -z 16k 2k"
make zstd.qcow2 64k cluster_size=512,compression_type=zstd "write -c -P 0x44 0 2k" "write -P 0x55 4k 512"
make refcount1.qcow2 64k cluster_size=512,refcount_bits=1 "${fill[@]}"
make refcount64.qcow2 64k cluster_size=512,refcount_bits=64 "${fill[@]}"
make extended-l2.qcow2 256k cluster_size=16k,extended_l2=on "write -P 0x66 1000 600" "write -z 16k 1k" "write -c -P 0x77 32k 16k"
make lazy-refcounts.qcow2 64k cluster_size=512,lazy_refcounts=on "write -P 0x11 0 1k"
qemu-img create -q -f qcow2 base.qcow2 64k
make backing.qcow2 64k cluster_size=512,backing_file=base.qcow2,backing_fmt=qcow2 "write -P 0x88 512 512"
make data-file.qcow2 64k cluster_size=512,data_file=data.raw "write -P 0x99 0 1k"
make big-virtual-size.qcow2 4G cluster_size=4096 "write -P 0xaa 3G 4k"
# A dirty image: qemu-io's abort leaves lazy refcounts stale and the dirty bit set.
qemu-img create -q -f qcow2 -o cluster_size=512,lazy_refcounts=on dirty.qcow2 64k
qemu-io -c "write -P 0x11 0 1k" -c "write -P 0x12 8k 512" -c abort dirty.qcow2 >/dev/null 2>&1 || true
cp dirty.qcow2 "$out/dirty.qcow2"
make snapshot.qcow2 64k cluster_size=512 "write -P 0x11 0 1k"
qemu-img snapshot -c s1 snapshot.qcow2
qemu-io -c "write -P 0x12 0 512" snapshot.qcow2 >/dev/null
cp snapshot.qcow2 "$out/snapshot.qcow2"
# Persistent bitmaps: one recording, one disabled at 512-byte granularity; then the same left in use by a crash.
qemu-img create -q -f qcow2 -o cluster_size=512 bitmaps.qcow2 64k
qemu-img bitmap --add bitmaps.qcow2 b0
qemu-img bitmap --add -g 512 --disable bitmaps.qcow2 b1
qemu-io -c "write -P 0x11 0 1k" -c "write -P 0x12 8k 512" bitmaps.qcow2 >/dev/null
cp bitmaps.qcow2 "$out/bitmaps.qcow2"
qemu-io -c "write -P 0x13 16k 512" -c "sigraise 9" bitmaps.qcow2 >/dev/null 2>&1 || true
cp bitmaps.qcow2 "$out/bitmaps-in-use.qcow2"
ls -l "$out"
