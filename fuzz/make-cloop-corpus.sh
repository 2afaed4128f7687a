#!/usr/bin/env bash
# Seeds fuzz/corpus/cloop-image with small cloop files made by Debian's create_compressed_fs (cloop-utils): 64 KiB
# blocks over a mostly empty disk, 512-byte blocks, and 1536-byte blocks stored uncompressed (-L 0).
set -euo pipefail
out="$(dirname "$0")/corpus/cloop-image"
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
{ seq 1 800; head -c 60000 /dev/zero; printf 'x%.0s' $(seq 1 100); head -c 140000 /dev/zero; } | head -c 204800 > "$tmp/sparse.raw"
{ seq 1000 1900; head -c 8192 /dev/zero; } | head -c 12288 > "$tmp/small.raw"
create_compressed_fs -q -B 65536 "$tmp/sparse.raw" "$out/sparse-64k.cloop" >/dev/null 2>&1
create_compressed_fs -q -B 512 "$tmp/small.raw" "$out/blocks-512.cloop" >/dev/null 2>&1
create_compressed_fs -q -B 1536 -L 0 "$tmp/small.raw" "$out/stored-1536.cloop" >/dev/null 2>&1
