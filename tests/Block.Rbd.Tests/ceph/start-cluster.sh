#!/usr/bin/env bash
# Starts a throwaway one-node Ceph 16 cluster for the rbd driver's tests: one ceph-mon and one ceph-osd on memstore,
# with cephx, no ceph-mgr (rbd needs none). Everything lives under DIR: ceph.conf, the keyrings, the mon's store, the
# osd's memstore dump, admin sockets, pid files and logs. The mon listens on 127.0.0.1:PORT (msgr v1 and v2 on PORT
# and PORT+1), the osd on free loopback ports of Ceph's 6800-7300 range; nothing listens beyond loopback.
#
#   start-cluster.sh DIR PORT [POOL]
#
# On success prints "ready" and leaves DIR/run/mon.a.pid and DIR/run/osd.0.pid; the caller stops the cluster by
# killing those two PIDs. Creates POOL (default "rbd") with size 1, initialised for rbd.
set -euo pipefail
dir="$(cd "$1" && pwd)"
port="$2"
pool="${3:-rbd}"
mkdir -p "$dir/run" "$dir/log" "$dir/mon" "$dir/osd"
fsid="$(cat /proc/sys/kernel/random/uuid)"
conf="$dir/ceph.conf"
cat > "$conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$((port + 1)),v1:127.0.0.1:$port]
public addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/ceph.client.admin.keyring
run dir = $dir/run
log file = $dir/log/\$name.log
crash dir = $dir/crash
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
[mon]
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
mon data = $dir/mon
[osd]
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
osd data = $dir/osd
osd objectstore = memstore
memstore device bytes = 2147483648
osd journal size = 0
osd max object name len = 256
osd max object namespace len = 64
keyring = $dir/osd/keyring
CONF

ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$dir/ceph.client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/ceph.client.admin.keyring" >/dev/null
monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$((port + 1)),v1:127.0.0.1:$port]" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring" >/dev/null
ceph-mon -c "$conf" -i a </dev/null >"$dir/log/mon-stdio.log" 2>&1

ceph() { command ceph -c "$conf" --connect-timeout 20 "$@"; }

# memstore ignores --osd-uuid and makes up its own: mkfs first, then register the osd under the uuid it chose.
ceph-authtool --create-keyring "$dir/osd/keyring" --gen-key -n osd.0 >/dev/null
ceph-osd -c "$conf" -i 0 --mkfs --no-mon-config >"$dir/log/osd-mkfs.log" 2>&1
osd_uuid="$(cat "$dir/osd/fsid")"
ceph auth add osd.0 osd 'allow *' mon 'allow profile osd' -i "$dir/osd/keyring" >/dev/null 2>&1
ceph osd new "$osd_uuid" 0 >/dev/null
ceph-osd -c "$conf" -i 0 </dev/null >"$dir/log/osd-stdio.log" 2>&1

ceph osd pool create "$pool" 8 8 replicated >/dev/null 2>&1
ceph osd pool application enable "$pool" rbd >/dev/null
# The pool is usable once its placement groups are active (without a mgr, `ceph pg stat` knows nothing): a write
# with a short op timeout succeeds then.
for _ in $(seq 1 60); do
  if timeout 10 rados -c "$conf" -p "$pool" --rados_osd_op_timeout 2 put .ready /dev/null >/dev/null 2>&1; then
    echo ready
    exit 0
  fi
  sleep 0.5
done
echo "pool $pool did not become writable" >&2
exit 1
