#!/usr/bin/env bash
# Seeds fuzz/corpus/vhdx-image with VHDX files made by qemu-img 7.2 (4 MiB disks, 1 MiB blocks), encoded as their
# non-zero sectors (Targets/SparseImageInput.cs): an empty dynamic disk, one holding data qemu-io wrote, one with
# block_state_zero=off, a fixed one, and one whose last log entry is armed again with its BAT sector undone (the
# file a crash between the log entry and the in-place write leaves, which an open replays).
set -euo pipefail
out="$(dirname "$0")/corpus/vhdx-image"
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
qemu-img create -q -f vhdx -o block_size=1M "$tmp/empty-4m.vhdx" 4M
qemu-img create -q -f vhdx -o block_size=1M "$tmp/allocated.vhdx" 4M
qemu-io -f vhdx -c 'write -P 0x61 0 4k' -c 'write -P 0x62 1500k 8k' -c 'write -P 0x63 3M 512' "$tmp/allocated.vhdx" >/dev/null
qemu-img create -q -f vhdx -o block_size=1M,block_state_zero=off "$tmp/state-zero-off.vhdx" 4M
qemu-img create -q -f vhdx -o block_size=1M,subformat=fixed "$tmp/fixed-2m.vhdx" 2M
cp "$tmp/allocated.vhdx" "$tmp/pending-log.vhdx"
python3 - "$tmp/pending-log.vhdx" <<'PY'
import struct, sys
def crc32c(data):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    crc = 0xffffffff
    for b in data:
        crc = table[(crc ^ b) & 0xff] ^ (crc >> 8)
    return crc ^ 0xffffffff
b = bytearray(open(sys.argv[1], 'rb').read())
log_length, log_offset = struct.unpack_from('<IQ', b, 0x10000 + 68)
best, guid = 0, None
for p in range(0, log_length, 4096):
    e = log_offset + p
    if struct.unpack_from('<I', b, e)[0] == 0x65676f6c and struct.unpack_from('<Q', b, e + 16)[0] > best:
        best, guid = struct.unpack_from('<Q', b, e + 16)[0], bytes(b[e + 32:e + 48])
for at in (0x10000, 0x20000):
    h = b[at:at + 4096]
    h[48:64] = guid
    h[4:8] = b'\0' * 4
    struct.pack_into('<I', h, 4, crc32c(bytes(h)))
    b[at:at + 4096] = h
bat = struct.unpack_from('<Q', b, 0x30000 + 32)[0]
struct.pack_into('<Q', b, bat + 3 * 8, 2)  # block 3's entry back to ZERO
open(sys.argv[1], 'wb').write(b)
PY
for f in "$tmp"/*.vhdx; do
  python3 - "$f" "$out/$(basename "$f")" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read()
sectors = (len(b) + 511) // 512
out = bytearray(struct.pack('<I', sectors))
s = 0
while s < sectors:
    if not any(b[s * 512:(s + 1) * 512]):
        s += 1
        continue
    start = s
    while s < sectors and s - start < 0xffff and any(b[s * 512:(s + 1) * 512]):
        s += 1
    out += struct.pack('<IH', start, s - start) + b[start * 512:s * 512]
open(sys.argv[2], 'wb').write(out)
PY
done
