#!/usr/bin/env bash
# Seeds fuzz/corpus/dmg-image with small dmg files written from the format's description by bench/make-dmg.py
# (hdiutil is macOS-only; qemu-img 7.2 reads the zlib, raw and zero ones): zlib chunks with the table in a resource
# fork, raw chunks in an XML property list, bzip2 chunks, each over a mostly empty disk.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/fuzz/corpus/dmg-image"
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
{ seq 1 900; head -c 20000 /dev/zero; printf 'x%.0s' $(seq 1 100); head -c 30000 /dev/zero; } | head -c 65536 > "$tmp/disk.raw"
python3 "$root/bench/make-dmg.py" --chunk-sectors 16 "$tmp/disk.raw" "$out/zlib-rsrc.dmg"
python3 "$root/bench/make-dmg.py" --chunk-sectors 16 --type raw --xml "$tmp/disk.raw" "$out/raw-xml.dmg"
python3 "$root/bench/make-dmg.py" --chunk-sectors 32 --type bzip2 "$tmp/disk.raw" "$out/bzip2-rsrc.dmg"
