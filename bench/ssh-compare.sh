#!/usr/bin/env bash
# Sequential convert of a 256 MiB raw image over ssh:// to a throwaway sshd on loopback (a generated host key and
# user key, the key in a private ssh-agent, config in BENCH_DIR): blk convert (as it ships: Native AOT) against
# qemu-img convert 7.2, both defaults, both directions (download: ssh -> local raw, upload: local raw -> ssh), the
# runs alternating RUNS times (default 2), best kept. Ratio = qemu-img's time / blk's (> 1: blk is faster).
#   flock /tmp/block-build.lock bench/ssh-compare.sh        (about a minute)
# Environment: BENCH_DIR (default /tmp/blk-bench), RUNS (default 2), SIZE_MIB (default 256), BLK (a blk binary to use
# instead of publishing one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}/ssh"
runs="${RUNS:-2}"
size="${SIZE_MIB:-256}"
rm -rf "$dir"; mkdir -p "$dir"
blk="${BLK:-$("$root/bench/publish-blk.sh" "${BENCH_DIR:-/tmp/blk-bench}/blk-publish")}"
ssh-keygen -q -t ed25519 -N '' -f "$dir/host" && ssh-keygen -q -t ed25519 -N '' -f "$dir/user"
cp "$dir/user.pub" "$dir/authorized_keys"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
Subsystem sftp internal-sftp
CFG
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
sshd_pid=""; agent_pid=""
trap '[ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null; [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; true' EXIT
"$(command -v sshd || echo /usr/sbin/sshd)" -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" & sshd_pid=$!
ssh-agent -D -a "$dir/agent.sock" >/dev/null & agent_pid=$!
for _ in $(seq 200); do [ -S "$dir/agent.sock" ] && grep -q "Server listening" "$dir/sshd.log" && break; sleep 0.05; done
export SSH_AUTH_SOCK="$dir/agent.sock"
ssh-add -q "$dir/user"
sha="$(awk '{print $2}' "$dir/host.pub" | base64 -d | sha256sum | cut -d' ' -f1)"
uri() { echo "ssh://$(id -un)@127.0.0.1:$port$dir/$1?host_key_check=sha256:$sha"; }

head -c "$((size << 20))" /dev/urandom > "$dir/src.raw"
best() { sort -n | head -1; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
declare -A t
for _ in $(seq "$runs"); do
  for tool in qemu blk; do
    if [ $tool = qemu ]; then conv=(qemu-img convert); else conv=("$blk" convert); fi
    rm -f "$dir/down.raw" "$dir/up.raw"
    t[$tool-down]+="$(time_of "${conv[@]}" -f raw -O raw "$(uri src.raw)" "$dir/down.raw") "
    cmp -s "$dir/src.raw" "$dir/down.raw" || { echo "$tool: download differs" >&2; exit 1; }
    t[$tool-up]+="$(time_of "${conv[@]}" -f raw -O raw "$dir/src.raw" "$(uri up.raw)") "
    cmp -s "$dir/src.raw" "$dir/up.raw" || { echo "$tool: upload differs" >&2; exit 1; }
  done
done
for way in down up; do
  q="$(tr ' ' '\n' <<<"${t[qemu-$way]}" | grep . | best)"; b="$(tr ' ' '\n' <<<"${t[blk-$way]}" | grep . | best)"
  printf '%-8s %4d MiB  qemu-img %6.2f s (%6.1f MiB/s)  blk %6.2f s (%6.1f MiB/s)  ratio %.2f\n' "$way" "$size" \
    "$q" "$(echo "$size / $q" | bc -l)" "$b" "$(echo "$size / $b" | bc -l)" "$(echo "$q / $b" | bc -l)"
done
