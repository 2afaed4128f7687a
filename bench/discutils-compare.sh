#!/usr/bin/env bash
# Block against DiscUtils (https://github.com/DiscUtils/DiscUtils, MIT), the .NET library users would otherwise pick,
# reading the same fully allocated 1 GiB vhdx, vdi and vpc (vhd) images of random data in the same process:
# random 4 KiB reads at QD1 and sequential 64 KiB reads over the whole disk, each library three times, alternating,
# best run kept; ratio = DiscUtils' time / ours. The script first checks that both libraries read the same bytes.
#
#   DISCUTILS_LIB=/path/to/assemblies flock /tmp/block-build.lock bench/discutils-compare.sh [vhdx vdi vpc]
#
# DISCUTILS_LIB is a directory holding DiscUtils' assemblies (DiscUtils.Streams, Core, Vhdx, Vdi, Vhd, or one assembly
# compiled from those sources) for net10.0. DiscUtils is not on the NuGet feed here: build it from its sources, outside
# this repository. Neither its code nor its binaries are ever committed here; this script only generates and builds a
# small timing harness (in $BENCH_DIR, outside the repository) that references those assemblies and Block.Formats.
# The images are those of bench/format-compare.sh (/tmp/blk-FORMAT-bench/random-1g.EXT), made by `qemu-img convert`
# with default options if missing. Needs qemu-utils.
set -euo pipefail
lib="${DISCUTILS_LIB:?set DISCUTILS_LIB to a directory with DiscUtils assemblies built from its sources}"
lib="$(cd "$lib" && pwd)"
formats=("$@")
[ ${#formats[@]} -gt 0 ] || formats=(vhdx vdi vpc)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_DIR:-/tmp/blk-discutils-bench}"
mkdir -p "$dir/harness"

images=()
for format in "${formats[@]}"; do
  case "$format" in
    vdi) ext=vdi ;; vpc) ext=vhd ;; vhdx) ext=vhdx ;;
    *) echo "discutils-compare.sh: DiscUtils reads vhdx, vdi and vpc, not '$format'" >&2; exit 2 ;;
  esac
  fdir="/tmp/blk-$format-bench"
  mkdir -p "$fdir"
  image="$fdir/random-1g.$ext"
  if [ ! -f "$image" ]; then
    dd if=/dev/urandom of="$fdir/random-1g.raw" bs=1M count=1024 status=none
    qemu-img convert -O "$format" "$fdir/random-1g.raw" "$image"
    rm -f "$fdir/random-1g.raw"
  fi
  cat "$image" > /dev/null
  images+=("$format=$image")
done

refs=""
for dll in "$lib"/DiscUtils*.dll; do
  refs+="    <Reference Include=\"$(basename "$dll" .dll)\"><HintPath>$dll</HintPath></Reference>"$'\n'
done
[ -n "$refs" ] || { echo "discutils-compare.sh: no DiscUtils*.dll in $lib" >&2; exit 2; }

cat > "$dir/harness/Harness.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
    <TieredPGO>true</TieredPGO>
    <ServerGarbageCollector>false</ServerGarbageCollector>
  </PropertyGroup>
  <ItemGroup>
    <ProjectReference Include="$root/Block.Formats/Block.Formats.csproj" />
$refs  </ItemGroup>
</Project>
EOF

cat > "$dir/harness/Program.cs" <<'EOF'
using System.Diagnostics;
using Block.Formats;
using Block.Graph;
using Block.Io;
using Block.Qapi;

const int RandomOps = 200_000;
const int SequentialSize = 64 << 10;

foreach (string arg in args)
{
    string format = arg[..arg.IndexOf('=')];
    string path = arg[(arg.IndexOf('=') + 1)..];

    await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = Block.Drivers.DriverRegistry.CreateDefault().AddFormats() });
    // As bench/FormatReadBenchmarks.cs: the inline engine (DiscUtils reads on the calling thread too) and no I/O
    // accounting (DiscUtils keeps no statistics; ours cost about 55 ns a request, bench/README.md).
    var ours = await graph.OpenImageAsync(path, new ImageOpenOptions
    {
        Format = format,
        ReadOnly = true,
        Aio = BlockdevAioOptions.Inline,
        Backend = new BlockBackendOptions { Accounting = false },
    });
    using var plain = File.OpenHandle(path);
    long fileLength = RandomAccess.GetLength(plain);
    using DiscUtils.VirtualDisk disk = format switch
    {
        "vhdx" => new DiscUtils.Vhdx.Disk(path, FileAccess.Read),
        "vdi" => new DiscUtils.Vdi.Disk(path, FileAccess.Read),
        "vpc" => new DiscUtils.Vhd.Disk(path, FileAccess.Read),
        _ => throw new ArgumentException(format),
    };
    Stream theirs = disk.Content;
    long size = Math.Min(ours.Length, theirs.Length) / SequentialSize * SequentialSize;

    using var ourBuffer = AlignedBuffer.Allocate(SequentialSize);
    byte[] theirBuffer = new byte[SequentialSize];
    var rng = new Random(7);
    long[] offsets = new long[RandomOps];
    for (int i = 0; i < offsets.Length; i++)
        offsets[i] = rng.NextInt64(size / 4096) * 4096;
    long[] fileOffsets = new long[RandomOps];
    for (int i = 0; i < fileOffsets.Length; i++)
        fileOffsets[i] = rng.NextInt64(fileLength / 4096) * 4096;

    // Both read the same bytes (and the first touch of every block is out of the timed runs).
    for (long o = 0; o < size; o += SequentialSize)
    {
        await ours.ReadAsync(o, ourBuffer.Memory[..SequentialSize]);
        ReadTheirs(theirs, o, theirBuffer, SequentialSize);
        if (!ourBuffer.Span[..SequentialSize].SequenceEqual(theirBuffer))
            throw new InvalidOperationException($"{format}: Block and DiscUtils read different data at {o}");
    }

    double bestOurRandom = double.MaxValue, bestTheirRandom = double.MaxValue;
    double bestOurSequential = double.MaxValue, bestTheirSequential = double.MaxValue;
    double bestPlainRandom = double.MaxValue, bestPlainSequential = double.MaxValue;
    for (int run = 0; run < 3; run++)
    {
        // The floor: pread of the image file itself, no format.
        var sw = Stopwatch.StartNew();
        foreach (long o in fileOffsets)
            RandomAccess.Read(plain, ourBuffer.Span[..4096], o);
        bestPlainRandom = Math.Min(bestPlainRandom, sw.Elapsed.TotalSeconds);

        sw.Restart();
        for (long o = 0; o + SequentialSize <= fileLength && o < size; o += SequentialSize)
            RandomAccess.Read(plain, ourBuffer.Span[..SequentialSize], o);
        bestPlainSequential = Math.Min(bestPlainSequential, sw.Elapsed.TotalSeconds);

        sw.Restart();
        var small = ourBuffer.Memory[..4096];
        foreach (long o in offsets)
            await ours.ReadAsync(o, small);
        bestOurRandom = Math.Min(bestOurRandom, sw.Elapsed.TotalSeconds);

        sw.Restart();
        foreach (long o in offsets)
            ReadTheirs(theirs, o, theirBuffer, 4096);
        bestTheirRandom = Math.Min(bestTheirRandom, sw.Elapsed.TotalSeconds);

        sw.Restart();
        var big = ourBuffer.Memory[..SequentialSize];
        for (long o = 0; o < size; o += SequentialSize)
            await ours.ReadAsync(o, big);
        bestOurSequential = Math.Min(bestOurSequential, sw.Elapsed.TotalSeconds);

        sw.Restart();
        for (long o = 0; o < size; o += SequentialSize)
            ReadTheirs(theirs, o, theirBuffer, SequentialSize);
        bestTheirSequential = Math.Min(bestTheirSequential, sw.Elapsed.TotalSeconds);
    }

    double mib = size / 1048576.0;
    Console.WriteLine($"{format} random 4 KiB QD1 ({RandomOps} reads): Block {RandomOps / bestOurRandom:F0} req/s ({bestOurRandom * 1e9 / RandomOps:F0} ns), " +
        $"DiscUtils {RandomOps / bestTheirRandom:F0} req/s ({bestTheirRandom * 1e9 / RandomOps:F0} ns), ratio {bestTheirRandom / bestOurRandom:F2}; " +
        $"pread of the file {RandomOps / bestPlainRandom:F0} req/s ({bestPlainRandom * 1e9 / RandomOps:F0} ns)");
    Console.WriteLine($"{format} sequential 64 KiB ({mib:F0} MiB): Block {mib / bestOurSequential:F0} MiB/s, " +
        $"DiscUtils {mib / bestTheirSequential:F0} MiB/s, ratio {bestTheirSequential / bestOurSequential:F2}; pread of the file {mib / bestPlainSequential:F0} MiB/s");
}

static void ReadTheirs(Stream stream, long offset, byte[] buffer, int count)
{
    stream.Position = offset;
    int done = 0;
    while (done < count)
    {
        int n = stream.Read(buffer, done, count - done);
        if (n <= 0)
            throw new EndOfStreamException($"DiscUtils read stopped at {offset + done}");
        done += n;
    }
}
EOF

dotnet build -c Release -v q -nologo "$dir/harness/Harness.csproj" -o "$dir/harness/out" >/dev/null
dotnet "$dir/harness/out/Harness.dll" "${images[@]}"
