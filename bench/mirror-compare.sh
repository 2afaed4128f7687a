#!/usr/bin/env bash
# Block job throughput, blk serve (as it ships: Native AOT) against qemu-storage-daemon 7.2 on the same files in one
# run, speed 0: drive-mirror (sync=full) of a 1 GiB qcow2 image full of data into a new qcow2 file, and an active
# block-commit of a 1 GiB top image (full of data) into its empty base, an intermediate block-commit of a 1 GiB image
# (full of data) below the active layer into its empty base, and blockdev-backup sync=full of the 1 GiB image into a
# new qcow2. Each measures from the command to BLOCK_JOB_COMPLETED (after block-job-complete, sent at
# BLOCK_JOB_READY, for the jobs with a ready phase). The two daemons alternate, three runs each; the best of each is
# kept and the ratio is QSD's time over blk's (> 1: blk is faster).
#   flock /tmp/block-build.lock bench/mirror-compare.sh      (about four minutes; 4 GiB in BENCH_DIR)
# Environment: BENCH_DIR (default /tmp/blk-bench), SIZE (default 1G), RUNS (default 3),
# WORKLOADS (default "mirror commit icommit backup").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-bench}/jobs"
size="${SIZE:-1G}"
mkdir -p "$dir"
blk="$("$root/bench/publish-blk.sh" "${BENCH_DIR:-/tmp/blk-bench}/blk-publish")"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT

filled() { # FILE [BACKING]: a qcow2 image of $size, every byte written (a varying pattern per 64 MiB)
  if [ -n "${2:-}" ]; then qemu-img create -q -f qcow2 -b "$2" -F qcow2 "$1" "$size"; else qemu-img create -q -f qcow2 "$1" "$size"; fi
  local bytes; bytes=$(numfmt --from=iec "$size"); local cmds=()
  for ((off = 0; off < bytes; off += 64 << 20)); do cmds+=(-c "write -q -P $(((off >> 26) % 250 + 1)) $off 64M"); done
  qemu-io -f qcow2 "${cmds[@]}" "$1" >/dev/null
}

run() { # NAME JOB-ID COMMAND-JSON BLOCKDEV... : starts the daemon on the blockdevs, times the job, stops the daemon
  local name="$1" id="$2" cmd="$3"; shift 3
  local sock="$dir/$name.sock" args=()
  for b in "$@"; do args+=(--blockdev "$b"); done
  rm -f "$sock"
  if [ "$name" = blk ]; then prog=("$blk" serve); else prog=(qemu-storage-daemon); fi
  "${prog[@]}" "${args[@]}" --chardev "socket,id=m0,path=$sock,server=on,wait=off" --monitor chardev=m0 >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  if [ "$id" = - ]; then # no ready phase: COMMAND-JSON is "NAME ARGS-JSON"
    python3 "$root/bench/job-time.py" "$sock" "${cmd%% *}" "${cmd#* }"
  else
    python3 "$root/bench/job-timer.py" "$sock" "$id" "$cmd" | cut -d' ' -f2
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

filled "$dir/src.qcow2"
file="driver=file,node-name=sf,filename=$dir/src.qcow2"
mirror='{"execute":"drive-mirror","arguments":{"device":"src","job-id":"j","target":"'"$dir"'/dst.qcow2","sync":"full","format":"qcow2"}}'
commit='{"execute":"block-commit","arguments":{"device":"top","job-id":"j"}}'
icommit='block-commit {"device":"top","job-id":"j","top":"'"$dir"'/mid.qcow2","base":"'"$dir"'/base.qcow2"}'
backup='blockdev-backup {"device":"src","job-id":"j","target":"dst","sync":"full"}'

printf '%-22s %9s %9s %7s\n' workload "blk s" "QSD s" ratio
declare -A best
for workload in ${WORKLOADS:-mirror commit icommit backup}; do
  best[blk]=999999; best[qsd]=999999
  for _ in $(seq "${RUNS:-3}"); do
    for name in blk qsd; do
      if [ "$workload" = mirror ]; then
        rm -f "$dir/dst.qcow2"; sync
        t=$(run "$name" j "$mirror" "$file" "driver=qcow2,node-name=src,file=sf")
      elif [ "$workload" = backup ]; then
        rm -f "$dir/dst.qcow2"; qemu-img create -q -f qcow2 "$dir/dst.qcow2" "$size"; sync
        t=$(run "$name" - "$backup" "$file" "driver=qcow2,node-name=src,file=sf" \
          "driver=file,node-name=df,filename=$dir/dst.qcow2" "driver=qcow2,node-name=dst,file=df")
      elif [ "$workload" = icommit ]; then
        qemu-img create -q -f qcow2 "$dir/base.qcow2" "$size"; filled "$dir/mid.qcow2" "$dir/base.qcow2"
        qemu-img create -q -f qcow2 -b "$dir/mid.qcow2" -F qcow2 "$dir/top.qcow2"; sync
        t=$(run "$name" - "$icommit" "driver=file,node-name=bf,filename=$dir/base.qcow2" "driver=qcow2,node-name=base,file=bf" \
          "driver=file,node-name=mf,filename=$dir/mid.qcow2" "driver=qcow2,node-name=mid,file=mf,backing=base" \
          "driver=file,node-name=tf,filename=$dir/top.qcow2" "driver=qcow2,node-name=top,file=tf,backing=mid")
      else
        qemu-img create -q -f qcow2 "$dir/base.qcow2" "$size"; filled "$dir/top.qcow2" "$dir/base.qcow2"; sync
        t=$(run "$name" j "$commit" "driver=file,node-name=bf,filename=$dir/base.qcow2" "driver=qcow2,node-name=base,file=bf" \
          "driver=file,node-name=tf,filename=$dir/top.qcow2" "driver=qcow2,node-name=top,file=tf,backing=base")
      fi
      if awk "BEGIN{exit !($t < ${best[$name]})}"; then best[$name]=$t; fi
    done
  done
  printf '%-22s %9s %9s %7s\n' "$workload $size" "${best[blk]}" "${best[qsd]}" "$(awk "BEGIN{printf \"%.2f\", ${best[qsd]}/${best[blk]}}")"
done
rm -f "$dir"/*.qcow2
