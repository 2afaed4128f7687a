#!/usr/bin/env bash
# Publishes blk as it ships and prints the path of the executable to run: Native AOT by default (a native binary, as
# qemu-img is: no runtime start, no JIT; a one-second convert would otherwise spend a fifth of its time there).
#   bench/publish-blk.sh DIR            BLK_BUILD=aot (default) | r2r (ReadyToRun on the shared runtime) | jit
# Native AOT needs clang (Debian's clang package); without it the ReadyToRun build is used, and said so on stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$1"
build="${BLK_BUILD:-aot}"
project="$root/Block.Cli/Block.Cli.csproj"
quiet=(-nologo -v quiet -clp:ErrorsOnly)
if [ "$build" = aot ]; then
  if command -v clang >/dev/null && dotnet publish "$project" -c Release -r linux-x64 -p:PublishAot=true -o "$out/aot" "${quiet[@]}" >&2; then
    echo "$out/aot/blk"
    exit 0
  fi
  echo "publish-blk.sh: Native AOT publish failed (is clang installed?); using ReadyToRun" >&2
  build=r2r
fi
case "$build" in
  r2r) dotnet publish "$project" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o "$out/r2r" "${quiet[@]}" >&2
       dll="$out/r2r/blk.dll" ;;
  jit) dotnet build "$project" -c Release "${quiet[@]}" >&2
       dll="$root/Block.Cli/bin/Release/net10.0/blk.dll" ;;
  *) echo "publish-blk.sh: BLK_BUILD must be aot, r2r or jit" >&2; exit 2 ;;
esac
wrapper="$out/blk-$build"
printf '#!/bin/sh\nexec dotnet "%s" "$@"\n' "$dll" > "$wrapper"
chmod +x "$wrapper"
echo "$wrapper"
