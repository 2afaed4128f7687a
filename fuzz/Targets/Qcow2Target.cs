using System.Buffers.Binary;
using Block.Drivers;
using Block.Fuzz.Memory;
using Block.Graph;
using Block.Options;
using Block.Qapi;
using Block.Qcow2;
using Block.Qcow2.Driver;

namespace Block.Fuzz.Targets;

/// <summary>
/// A qcow2 image file: header and extensions, then the metadata walk — every allocated range read through the L1
/// and L2 tables (bounded), <c>check</c> over the refcounts and snapshots — and a few writes, zeroes, a discard and a
/// compressed write on a read-write open with every overlap check on, followed by another check.
/// </summary>
/// <remarks>The image lives in memory (<see cref="MemoryDriver"/>); files it names (backing, data file) are never
/// opened: the backing file is left out, and an external data file is another empty memory node.</remarks>
public sealed class Qcow2Target : IFuzzTarget
{
    private const int MaxStatusSteps = 4096;
    private const long MaxReadBytes = 8 << 20;

    private static readonly DriverRegistry s_drivers = DriverRegistry.CreateDefault().AddQcow2().Add(new MemoryDriver());

    /// <inheritdoc />
    public string Name => "qcow2";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input)
    {
        var image = input.ToArray();
        Task.Run(() => RunAsync(image)).GetAwaiter().GetResult();
    }

    private static async Task RunAsync(byte[] image)
    {
        try
        {
            await ReadEverythingAsync(image).ConfigureAwait(false);
        }
        finally
        {
            // Whether or not the read-only pass refused the image, the write path gets its own try.
            await WriteSomeAsync(image).ConfigureAwait(false);
        }
    }

    private static BlockGraph NewGraph() => new(new BlockGraphOptions { Drivers = s_drivers, ReferencePolicy = ImageReferencePolicy.Deny });

    private static BlockdevOptionsQcow2 Options(byte[] image, bool readOnly) => new()
    {
        File = new BlockdevOptionsMemory { Data = image, ReadOnly = readOnly },
        NoBacking = true,
        DataFile = HasExternalDataFile(image) ? (BlockdevRef)new BlockdevOptionsMemory { ReadOnly = readOnly } : null,
        ReadOnly = readOnly,
        Discard = BlockdevDiscardOptions.Unmap,
        OverlapCheck = readOnly ? null : new Qcow2OverlapChecks { Template = Qcow2OverlapCheckMode.All },
    };

    private static bool HasExternalDataFile(byte[] image) =>
        image.Length >= 80 && BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(4)) >= 3
        && (BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(72)) & 4) != 0;

    private static async Task ReadEverythingAsync(byte[] image)
    {
        var graph = NewGraph();
        await using (graph.ConfigureAwait(false))
        {
            var backend = await graph.OpenBackendAsync(Options(image, readOnly: true),
                new BlockBackendOptions { Permissions = BlockPermissions.ConsistentRead }).ConfigureAwait(false);
            long length = backend.Length;
            var buffer = new byte[64 * 1024];
            long budget = MaxReadBytes;
            long pos = 0;
            for (int step = 0; step < MaxStatusSteps && pos < length; step++)
            {
                var status = await backend.GetBlockStatusAsync(pos, length - pos).ConfigureAwait(false);
                long bytes = Math.Clamp(status.Bytes, 1, length - pos);
                if (budget > 0 && status.Has(BlockStatusFlags.Data))
                {
                    int n = (int)Math.Min(Math.Min(bytes, buffer.Length), budget);
                    await backend.ReadAsync(pos, buffer.AsMemory(0, n)).ConfigureAwait(false);
                    budget -= n;
                }
                pos += bytes;
            }
            if (length > 0)
            {
                await backend.ReadAsync(0, buffer.AsMemory(0, (int)Math.Min(length, 4096))).ConfigureAwait(false);
                await backend.ReadAsync(Math.Max(0, length - 777), buffer.AsMemory(0, (int)Math.Min(length, 777))).ConfigureAwait(false);
            }
            await backend.Root!.Impl.CheckAsync(CheckRepair.None, TextWriter.Null).ConfigureAwait(false);
        }
    }

    private static async Task WriteSomeAsync(byte[] image)
    {
        var graph = NewGraph();
        await using (graph.ConfigureAwait(false))
        {
            var backend = await graph.OpenBackendAsync(Options(image, readOnly: false),
                new BlockBackendOptions
                {
                    Permissions = BlockPermissions.ConsistentRead | BlockPermissions.Write,
                    // The default policy stops the device on ENOSPC (waiting for a resume), which the memory node returns
                    // when the image asks it to grow past its limit.
                    WriteErrorPolicy = BlockdevOnError.Report,
                }).ConfigureAwait(false);
            long length = backend.Length;
            if (length == 0)
                return;
            long cluster = backend.Root!.Impl.ClusterSize ?? 65536;
            var data = new byte[4096];
            data.AsSpan().Fill(0x5a);
            await backend.WriteAsync(0, data.AsMemory(0, (int)Math.Min(length, 4096))).ConfigureAwait(false);
            await backend.WriteAsync(length / 2 / 512 * 512 + 3, data.AsMemory(0, (int)Math.Min(length - length / 2 / 512 * 512 - 3, 1000))).ConfigureAwait(false);
            await backend.WriteZeroesAsync(length / 3, Math.Min(length - length / 3, 3 * cluster), RequestFlags.MayUnmap).ConfigureAwait(false);
            await backend.DiscardAsync(0, Math.Min(length, 2 * cluster)).ConfigureAwait(false);
            long last = (length - 1) / cluster * cluster;
            if (!HasExternalDataFile(image))
            {
                var compressible = new byte[length - last >= cluster ? cluster : length - last];
                await backend.WriteAsync(last, compressible, RequestFlags.Compressed).ConfigureAwait(false);
            }
            await backend.FlushAsync().ConfigureAwait(false);
            await backend.Root!.Impl.CheckAsync(CheckRepair.None, TextWriter.Null).ConfigureAwait(false);
        }
    }
}
