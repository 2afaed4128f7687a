#!/usr/bin/env bash
# http side by side: `blk convert` with its defaults against `qemu-img convert -m 1` (QEMU 7.2's curl driver hangs
# under convert's default eight parallel reads) from the same URL: a 512 MiB raw image of random data served by nginx
# on loopback, converted to raw in /dev/shm. The two alternate RUNS times (3), best kept; ratio = qemu-img's time / blk's.
#   bench/curl-compare.sh        (needs qemu-utils and nginx-light; run it under the build lock so no compiler shares the cores)
#   RUNS=3 SIZE_MIB=512 NGINX_WORKERS=1 BENCH_DIR=/tmp/blk-curl-bench BLK=<a blk binary to use instead of publishing one>
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-curl-bench}"
runs="${RUNS:-3}"
size="${SIZE_MIB:-512}"
workers="${NGINX_WORKERS:-1}"
mkdir -p "$dir/www" "$dir/temp"
image="$dir/www/random.raw"
if [ ! -f "$image" ] || [ "$(stat -c %s "$image")" != $((size << 20)) ]; then
  dd if=/dev/urandom of="$image" bs=1M count="$size" status=none
fi
cat "$image" > /dev/null
blk="${BLK:-$("$root/bench/publish-blk.sh" "$dir/blk-publish")}"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$dir/nginx.conf" <<CONF
daemon off;

worker_processes ${workers};
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $dir/temp/body; proxy_temp_path $dir/temp/proxy; fastcgi_temp_path $dir/temp/fastcgi;
  uwsgi_temp_path $dir/temp/uwsgi; scgi_temp_path $dir/temp/scgi;
  sendfile on;
  server { listen 127.0.0.1:$port; root $dir/www; }
}
CONF
nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" & server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 600); do curl -sf -o /dev/null -I "http://127.0.0.1:$port/random.raw" && break; sleep 0.1; done
url="http://127.0.0.1:$port/random.raw"
out="${SHM_DIR:-/dev/shm}"
timed() { # prints "real user+sys" of "$@"
  /usr/bin/time -f "%e %U %S" "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%s %.2f\n", $1, $2 + $3}'
}
tb=""; tq=""; cpu_b=""; cpu_q=""
for _ in $(seq "$runs"); do
  rm -f "$out/curl-b.raw" "$out/curl-q.raw"
  read -r t c < <(timed "$blk" convert -f raw -O raw "$url" "$out/curl-b.raw")
  if [ -z "$tb" ] || awk "BEGIN{exit !($t < $tb)}"; then tb="$t"; cpu_b="$c"; fi
  read -r t c < <(timed qemu-img convert -m 1 -f raw -O raw "$url" "$out/curl-q.raw")
  if [ -z "$tq" ] || awk "BEGIN{exit !($t < $tq)}"; then tq="$t"; cpu_q="$c"; fi
done
cmp "$image" "$out/curl-b.raw"
cmp "$image" "$out/curl-q.raw"
rm -f "$out/curl-b.raw" "$out/curl-q.raw"
printf '%-44s %10s %10s %7s\n' "convert ${size} MiB raw over http (nginx)" "blk" "qemu-img" "ratio"
printf '%-44s %10s %10s %7.2f\n' "wall s (blk defaults; qemu-img -m 1)" "$tb" "$tq" "$(awk "BEGIN{print $tq / $tb}")"
printf '%-44s %10s %10s\n' "CPU s (user+sys)" "$cpu_b" "$cpu_q"
printf '%-44s %10.0f %10.0f\n' "MiB/s" "$(awk "BEGIN{print $size / $tb}")" "$(awk "BEGIN{print $size / $tq}")"
