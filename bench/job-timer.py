#!/usr/bin/env python3
"""Times one block job over QMP: sends the job command, waits for BLOCK_JOB_READY, sends block-job-complete, waits
for BLOCK_JOB_COMPLETED, and prints the seconds from the command to READY and to COMPLETED.
   job-timer.py SOCKET JOB-ID 'COMMAND-JSON'"""
import json, socket, sys, time

sock_path, job_id, command = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
s = socket.socket(socket.AF_UNIX)
s.connect(sock_path)
f = s.makefile("rwb", buffering=0)


def send(obj):
    f.write(json.dumps(obj).encode() + b"\n")


def read_until(pred):
    while True:
        line = f.readline()
        if not line:
            sys.exit("connection closed")
        msg = json.loads(line)
        if "error" in msg:
            sys.exit("error: " + json.dumps(msg))
        if pred(msg):
            return msg


read_until(lambda m: "QMP" in m)
send({"execute": "qmp_capabilities"})
read_until(lambda m: "return" in m)
t0 = time.monotonic()
send(command)
read_until(lambda m: m.get("event") == "BLOCK_JOB_READY")
ready = time.monotonic() - t0
send({"execute": "block-job-complete", "arguments": {"device": job_id}})
done = read_until(lambda m: m.get("event") == "BLOCK_JOB_COMPLETED")
if "error" in done.get("data", {}):
    sys.exit("job failed: " + json.dumps(done))
print(f"{ready:.3f} {time.monotonic() - t0:.3f}")
