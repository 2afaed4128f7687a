#!/usr/bin/env bash
# Publishes blk as it ships and prints the path of the executable to run: Native AOT by default (a native binary, as
# qemu-img is: no runtime start, no JIT; a one-second convert would otherwise spend a fifth of its time there).
#   bench/publish-blk.sh DIR            BLK_BUILD=aot (default) | r2r (ReadyToRun on the shared runtime) | jit
# Native AOT links with clang (the runtime brings its own zlib): Debian's clang package is installed when it is missing
# (as root, or through sudo without a password). When Native AOT can't be built, the ReadyToRun build is used, and one line on
# stderr says so and names the log. ./blk runs what this prints; so do the bench scripts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$1"
build="${BLK_BUILD:-aot}"
project="$root/Block.Cli/Block.Cli.csproj"
quiet=(-nologo -v quiet -clp:ErrorsOnly)
case "$(uname -m)" in
  aarch64|arm64) rid=linux-arm64 ;;
  *) rid=linux-x64 ;;
esac
mkdir -p "$out"

# Debian's clang when it is missing: the Native AOT build's linker driver.
native_toolchain() {
  local packages=()
  command -v clang >/dev/null 2>&1 || packages+=(clang)
  [ ${#packages[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || return 1
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
    sudo=(sudo -n)
  fi
  echo "blk: installing ${packages[*]} for the Native AOT build" >&2
  { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"; } \
    >>"$out/aot.log" 2>&1
}

if [ "$build" = aot ]; then
  : >"$out/aot.log"
  if native_toolchain && dotnet publish "$project" -c Release -r "$rid" -p:PublishAot=true -o "$out/aot" "${quiet[@]}" >>"$out/aot.log" 2>&1; then
    echo "$out/aot/blk"
    exit 0
  fi
  echo "blk: the Native AOT build failed (clang missing? see $out/aot.log); using the ReadyToRun build" >&2
  build=r2r
fi
case "$build" in
  r2r) dotnet publish "$project" -c Release -r "$rid" --self-contained false -p:PublishReadyToRun=true -o "$out/r2r" "${quiet[@]}" >&2
       dll="$out/r2r/blk.dll" ;;
  jit) dotnet build "$project" -c Release "${quiet[@]}" >&2
       dll="$root/Block.Cli/bin/Release/net10.0/blk.dll" ;;
  *) echo "publish-blk.sh: BLK_BUILD must be aot, r2r or jit" >&2; exit 2 ;;
esac
wrapper="$out/blk-$build"
printf '#!/bin/sh\nexec dotnet "%s" "$@"\n' "$dll" > "$wrapper"
chmod +x "$wrapper"
echo "$wrapper"
