#!/usr/bin/env python3
"""Writes a raw disk image as an Apple UDIF (dmg) image, from the format's description (hdiutil is macOS-only):
chunks of --chunk-sectors sectors (zero chunks for all-zero data, else --type: zlib, raw or bzip2), one blkx table in
a resource fork (or, with --xml, in an XML property list), and the 512-byte koly trailer. Used by bench/format-compare.sh
for its 1 GiB dmg and by fuzz/make-dmg-corpus.sh for the fuzz seeds.
    bench/make-dmg.py [--xml] [--chunk-sectors N] [--type zlib|raw|bzip2] IN.raw OUT.dmg"""
import argparse, base64, bz2, struct, zlib

TYPES = {"zero": 0, "raw": 1, "zlib": 0x80000005, "bzip2": 0x80000006}

def mish(sectors, entries):
    b = bytearray(204 + 40 * len(entries))
    b[0:4] = b"mish"
    struct.pack_into(">IQQQ", b, 4, 1, 0, sectors, 0)
    struct.pack_into(">I", b, 200, len(entries))
    for i, (t, s, c, o, l) in enumerate(entries):
        struct.pack_into(">IIQQQQ", b, 204 + 40 * i, t, 0, s, c, o, l)
    return bytes(b)

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--xml", action="store_true")
    p.add_argument("--chunk-sectors", type=int, default=2048)
    p.add_argument("--type", choices=["zlib", "raw", "bzip2"], default="zlib")
    p.add_argument("input")
    p.add_argument("output")
    a = p.parse_args()
    chunk = a.chunk_sectors * 512
    entries = [(0x7FFFFFFE, 0, 0, 0, 0)]
    with open(a.input, "rb") as src, open(a.output, "wb") as out:
        sector = 0
        while True:
            data = src.read(chunk)
            if not data:
                break
            data += bytes(-len(data) % 512)
            if data.count(0) == len(data):
                kind, stored = "zero", b""
            else:
                kind = a.type
                stored = {"raw": lambda d: d, "zlib": zlib.compress, "bzip2": bz2.compress}[kind](data)
            entries.append((TYPES[kind], sector, len(data) // 512, out.tell(), len(stored)))
            out.write(stored)
            sector += len(data) // 512
        data_length = out.tell()
        entries.append((0xFFFFFFFF, sector, 0, data_length, 0))
        table = mish(sector, entries)
        rsrc_offset = rsrc_length = xml_offset = xml_length = 0
        if a.xml:
            b64 = base64.b64encode(table).decode()
            lines = "".join("\t\t\t\t%s\n" % b64[i:i + 52] for i in range(0, len(b64), 52))
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n\t<key>resource-fork</key>\n'
                   "\t<dict>\n\t\t<key>blkx</key>\n\t\t<array>\n\t\t\t<dict>\n\t\t\t\t<key>Data</key>\n\t\t\t\t<data>\n"
                   + lines + "\t\t\t\t</data>\n\t\t\t</dict>\n\t\t</array>\n\t</dict>\n</dict>\n</plist>\n").encode()
            xml_offset, xml_length = out.tell(), len(xml)
            out.write(xml)
        else:
            data = struct.pack(">I", len(table)) + table
            fork = struct.pack(">IIII", 256, 256 + len(data), len(data), 0) + bytes(240) + data
            rsrc_offset, rsrc_length = out.tell(), len(fork)
            out.write(fork)
        koly = bytearray(512)
        koly[0:4] = b"koly"
        struct.pack_into(">III", koly, 4, 4, 512, 1)
        struct.pack_into(">QQQQ", koly, 0x18, 0, data_length, rsrc_offset, rsrc_length)
        struct.pack_into(">II", koly, 0x38, 1, 1)
        struct.pack_into(">QQ", koly, 0xD8, xml_offset, xml_length)
        struct.pack_into(">IQ", koly, 0x1E8, 1, sector)
        out.write(koly)

main()
