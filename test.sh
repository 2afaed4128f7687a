#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs the oracle (Debian's qemu-utils, qemu-system-common for
# qemu-storage-daemon, qemu-system-x86 for device models, socat, a QMP client we did not write, nbdkit, libnbd-bin and
# gnutls-bin for NBD peers and certificates, cryptsetup-bin, cloop-utils for cloop images, openssh-server/-client
# for the throwaway sshd and ssh-agent of the ssh driver's tests, nginx-light, vsftpd, libcurl4 and openssl for
# the http and ftp drivers, mtools to read the vvfat driver's disks, tgt, libiscsi7 and qemu-block-extra
# (qemu-img's iscsi, rbd and nfs modules) for the iscsi driver, ceph-mon, ceph-osd, ceph-common and librbd1 for
# the rbd driver's throwaway Ceph cluster, and nfs-ganesha, nfs-ganesha-vfs, rpcbind, iproute2 and libnfs13 for
# the nfs driver's throwaway server, and glusterfs-server, libgfapi0 and qemu-block-extra (qemu-img's gluster module)
# for the gluster driver's throwaway glusterd) when missing,
# builds, runs every test project, and ends with one line "N passed, N failed, N skipped".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

packages=()
command -v qemu-img >/dev/null 2>&1 || packages+=(qemu-utils)
command -v qemu-io >/dev/null 2>&1 || packages+=(qemu-utils)
command -v qemu-storage-daemon >/dev/null 2>&1 || packages+=(qemu-system-common)
command -v socat >/dev/null 2>&1 || packages+=(socat)
command -v qemu-system-x86_64 >/dev/null 2>&1 || packages+=(qemu-system-x86)
command -v nbdinfo >/dev/null 2>&1 || packages+=(libnbd-bin)
command -v nbdkit >/dev/null 2>&1 || packages+=(nbdkit)
command -v fio >/dev/null 2>&1 || packages+=(fio)
command -v certtool >/dev/null 2>&1 || packages+=(gnutls-bin)
command -v create_compressed_fs >/dev/null 2>&1 || packages+=(cloop-utils)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || packages+=(openssh-server)
command -v ssh-agent >/dev/null 2>&1 || packages+=(openssh-client)
[ -x /usr/lib/openssh/sftp-server ] || [ -x /usr/libexec/openssh/sftp-server ] || packages+=(openssh-sftp-server)
/sbin/ldconfig -p 2>/dev/null | grep -q 'libssh.so.4 ' || packages+=(libssh-4)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || packages+=(nginx-light)
[ -x /usr/sbin/vsftpd ] || command -v vsftpd >/dev/null 2>&1 || packages+=(vsftpd)
/sbin/ldconfig -p 2>/dev/null | grep -q 'libcurl.so.4 ' || packages+=(libcurl4)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
command -v mdir >/dev/null 2>&1 || packages+=(mtools)
[ -x /usr/sbin/tgtd ] || command -v tgtd >/dev/null 2>&1 || packages+=(tgt)
/sbin/ldconfig -p 2>/dev/null | grep -q 'libiscsi.so.7 ' || packages+=(libiscsi7)
[ -e /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so ] || [ -e /usr/lib/aarch64-linux-gnu/qemu/block-iscsi.so ] || packages+=(qemu-block-extra)
command -v ceph-mon >/dev/null 2>&1 || packages+=(ceph-mon)
command -v ceph-osd >/dev/null 2>&1 || packages+=(ceph-osd)
command -v ceph >/dev/null 2>&1 || packages+=(ceph-common)
/sbin/ldconfig -p 2>/dev/null | grep -q 'librbd.so.1 ' || packages+=(librbd1)
ls /usr/lib/*/qemu/block-rbd.so >/dev/null 2>&1 || packages+=(qemu-block-extra)
command -v ganesha.nfsd >/dev/null 2>&1 || packages+=(nfs-ganesha)
ls /usr/lib/*/ganesha/libfsalvfs.so >/dev/null 2>&1 || packages+=(nfs-ganesha-vfs)
command -v rpcbind >/dev/null 2>&1 || [ -x /usr/sbin/rpcbind ] || packages+=(rpcbind)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || packages+=(iproute2)
/sbin/ldconfig -p 2>/dev/null | grep -q 'libnfs.so.13 ' || packages+=(libnfs13)
ls /usr/lib/*/qemu/block-nfs.so >/dev/null 2>&1 || packages+=(qemu-block-extra)
command -v glusterd >/dev/null 2>&1 || [ -x /usr/sbin/glusterd ] || packages+=(glusterfs-server)
/sbin/ldconfig -p 2>/dev/null | grep -q 'libgfapi.so.0 ' || packages+=(libgfapi0)
ls /usr/lib/*/qemu/block-gluster.so >/dev/null 2>&1 || packages+=(qemu-block-extra)
command -v cryptsetup >/dev/null 2>&1 || [ -x /usr/sbin/cryptsetup ] || [ -x /sbin/cryptsetup ] || packages+=(cryptsetup-bin)
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing the test oracle: ${packages[*]}"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" \
    || echo "could not install ${packages[*]}: the oracle tests will fail" >&2
fi

results="$root/TestResults"
rm -rf "$results"
if ! dotnet build Block.sln -c Release -nologo -v quiet -clp:ErrorsOnly; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

# Two lanes. The waiting lane runs, one after the other, the projects that spend their time waiting on servers of
# their own (gluster: every qemu-img run ends with libgfapi's 10 s glfs_fini; its glusterd lives in private network,
# mount and PID namespaces, so nothing it binds or writes meets the other lane), beside the main lane, which runs
# every other project one after the other as before. The main lane runs at a lower priority (nice), so the waiting
# lane's short bursts of work get a core at once, as when it ran alone. The waiting lane's console output is held in
# a file and printed when it is done; its .trx files land beside the others and are counted the same way.
waiting_lane=(Block.Gluster.Tests)

run_project() {
  local project="$1" name
  name="$(basename "$project" .csproj)"
  dotnet test "$project" -c Release --no-build -nologo \
    --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=minimal" \
    --results-directory "$results" --blame-hang-timeout 10m || true
}

in_waiting_lane() {
  local name="$1" w
  for w in "${waiting_lane[@]}"; do [ "$w" = "$name" ] && return 0; done
  return 1
}

main_projects=(); waiting_projects=()
for project in tests/*/*.Tests.csproj; do
  if in_waiting_lane "$(basename "$project" .csproj)"; then waiting_projects+=("$project"); else main_projects+=("$project"); fi
done

mkdir -p "$results"
waiting_log="$results/waiting-lane.log"
(
  for project in "${waiting_projects[@]}"; do run_project "$project"; done
) >"$waiting_log" 2>&1 &
waiting_pid=$!

(
  renice -n 10 -p "$BASHPID" >/dev/null 2>&1 || true
  for project in "${main_projects[@]}"; do run_project "$project"; done
)

wait "$waiting_pid"
echo "=== the waiting lane, run beside the others: ${waiting_lane[*]}"
cat "$waiting_log"

failed_projects=0
for project in "${main_projects[@]}" "${waiting_projects[@]}"; do
  name="$(basename "$project" .csproj)"
  [ -f "$results/$name.trx" ] || { echo "$name produced no results"; failed_projects=$((failed_projects + 1)); }
done

passed=0; failed=0; skipped=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n1)"
  get() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + $(get notExecuted)))
done
failed=$((failed + failed_projects))
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
