#!/usr/bin/env python3
"""QMP round trips per second against one monitor socket: qmp-roundtrips.py SOCKET WORKLOAD COUNT.

WORKLOAD is query-block, query-named-block-nodes, or add-del (blockdev-add of a null-co node, then blockdev-del:
one pair counts as one round trip of each). One command is in flight at a time, as a management tool sends them.
Prints the rate.
"""
import socket
import sys
import time

path, workload, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
f = s.makefile("rwb", buffering=0)
reader = s.makefile("rb")


def call(text):
    s.sendall(text)
    line = reader.readline()
    if b'"error"' in line:
        sys.exit("error reply: " + line.decode())
    return line


reader.readline()  # greeting
call(b'{"execute":"qmp_capabilities"}\n')
if workload == "add-del":
    requests = [b'{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"bench0"}}\n',
                b'{"execute":"blockdev-del","arguments":{"node-name":"bench0"}}\n']
else:
    requests = [('{"execute":"%s"}\n' % workload).encode()]
for _ in range(min(count, 200)):  # warm-up
    for r in requests:
        call(r)
start = time.perf_counter()
for _ in range(count):
    for r in requests:
        call(r)
elapsed = time.perf_counter() - start
print("%.0f" % (count / elapsed))
