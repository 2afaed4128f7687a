#!/usr/bin/env bash
# Seeds fuzz/corpus/parallels-image with small Parallels files made by qemu-img 7.2 (4 KiB clusters): an empty disk,
# one with data in clusters allocated out of order, one left in use (the flag a crash leaves), and one rewritten in
# the old signature (BAT entries in sectors, no data offset).
set -euo pipefail
out="$(dirname "$0")/corpus/parallels-image"
mkdir -p "$out"
qemu-img create -q -f parallels -o cluster_size=4k "$out/empty-1m.prl" 1M
qemu-img create -q -f parallels -o cluster_size=4k "$out/allocated.prl" 1M
qemu-io -f parallels -c 'write -P 0x61 0 4k' -c 'write -P 0x62 600k 8k' -c 'write -P 0x63 70000 300' "$out/allocated.prl" >/dev/null
cp "$out/allocated.prl" "$out/in-use.prl"
printf 'Ynot' | dd of="$out/in-use.prl" bs=1 seek=44 conv=notrunc status=none
python3 - "$out/allocated.prl" "$out/old-signature.prl" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[0:16] = b'WithoutFreeSpace'
tracks, entries = struct.unpack_from('<II', b, 28)
for i in range(entries):
    v = struct.unpack_from('<I', b, 64 + 4 * i)[0]
    struct.pack_into('<I', b, 64 + 4 * i, v * tracks)
struct.pack_into('<I', b, 48, 0)
open(sys.argv[2], 'wb').write(b)
PY
