#!/usr/bin/env python3
"""Times one block job over QMP: sends COMMAND with ARGS (JSON) to the daemon at SOCKET and prints the seconds until
its BLOCK_JOB_COMPLETED event (an error in the event or the reply fails). Used by bench/backup-compare.sh."""
import json, socket, sys, time

sock_path, command, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)
f = s.makefile("rw")
json.loads(f.readline())  # greeting
f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n"); f.flush()
json.loads(f.readline())
start = time.monotonic()
f.write(json.dumps({"execute": command, "arguments": args}) + "\n"); f.flush()
while True:
    msg = json.loads(f.readline())
    if "error" in msg:
        sys.exit(f"{command}: {msg['error']}")
    if msg.get("event") == "BLOCK_JOB_COMPLETED":
        if "error" in msg["data"]:
            sys.exit(f"job failed: {msg['data']['error']}")
        break
print(f"{time.monotonic() - start:.3f}")
