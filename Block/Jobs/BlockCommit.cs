using System.Diagnostics;
using Block.Graph;
using Block.Qapi;

namespace Block.Jobs;

/// <summary>Options of a <see cref="BlockCommit"/>.</summary>
public sealed record BlockCommitOptions
{
    /// <summary>Bytes per second the copy may take; 0 for no limit (a job's <c>speed</c>, <c>qemu-img commit -r</c>).</summary>
    public long RateLimit { get; init; }

    /// <summary>Called after each piece written into the base, with the bytes done so far and the bytes to do in all.</summary>
    public Action<long, long>? Progress { get; init; }
}

/// <summary>
/// Commits the images above a base into it (QEMU's commit, as <c>qemu-img commit</c> runs it): every range that an image
/// between the top (included) and the base (excluded) holds is written into the base with the content the top shows,
/// zeroes as zeroes. The base grows to the top's length if it is shorter; the images above it are left as they are.
/// </summary>
/// <remarks>
/// <para>Ranges are copied in granules of the base's cluster size (4 KiB to 64 KiB, 64 KiB without clusters), as QEMU's
/// commit marks them, and in pieces of at most 1 MiB, in ascending order. A read-only base is reopened read-write for
/// the copy and made read-only again afterwards.</para>
/// <para>Emptying the top afterwards (<c>qemu-img commit</c> without <c>-d</c>) is <see cref="Drivers.NodeDriver.MakeEmptyAsync"/>.
/// A failed or cancelled commit leaves the chain reading as before: what reached the base is shadowed by the images
/// above it.</para>
/// </remarks>
public sealed class BlockCommit
{
    /// <summary>Largest piece read and written at once (QEMU's mirror: a 16 MiB buffer over 16 requests).</summary>
    public const int MaxPieceBytes = 1 << 20;

    private readonly BlockCommitOptions _options;
    private long _bytesDone;
    private long _bytesTotal;

    /// <summary>Creates a commit of <paramref name="top"/> into <paramref name="base"/>, which must be below it in its backing chain.</summary>
    /// <exception cref="BlockException">EINVAL: <paramref name="base"/> is not in <paramref name="top"/>'s backing chain.</exception>
    public BlockCommit(BlockNode top, BlockNode @base, BlockCommitOptions? options = null)
    {
        bool found = false;
        for (var node = top.Backing?.Node; node != null && !found; node = node.Backing?.Node)
            found = ReferenceEquals(node, @base);
        if (!found)
            throw new BlockException(Errno.EINVAL, $"'{@base.Filename}' is not in the backing chain of '{top.Filename}'");
        if (options?.RateLimit < 0)
            throw new BlockException(Errno.EINVAL, "Invalid parameter 'speed'");
        Top = top;
        Base = @base;
        _options = options ?? new BlockCommitOptions();
    }

    /// <summary>The image whose chain is committed.</summary>
    public BlockNode Top { get; }

    /// <summary>The image written into.</summary>
    public BlockNode Base { get; }

    /// <summary>Bytes written into the base so far (a job's <c>offset</c>).</summary>
    public long BytesDone => Volatile.Read(ref _bytesDone);

    /// <summary>Bytes to write in all, known once the run has looked at the chain (a job's <c>len</c>).</summary>
    public long BytesTotal => Volatile.Read(ref _bytesTotal);

    /// <summary>Runs the commit.</summary>
    /// <exception cref="BlockException">A read, a write, growing or reopening the base failed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask RunAsync(CancellationToken cancellationToken = default)
    {
        var graph = Base.Graph;
        bool reopened = Base.ReadOnly;
        if (reopened)
            await graph.ReopenAsync(Base, readOnly: false, cancellationToken).ConfigureAwait(false);
        try
        {
            var target = graph.CreateBackend(Base, new BlockBackendOptions
            {
                Accounting = false,
                Permissions = BlockPermissions.ConsistentRead | BlockPermissions.Write | BlockPermissions.Resize,
                SharedPermissions = BlockPermissions.All,
            });
            await using (target.ConfigureAwait(false))
            {
                long length = Top.Length;
                if (Base.Length < length)
                    await target.TruncateAsync(length, PreallocMode.Off).ConfigureAwait(false);
                var runs = await FindRunsAsync(length, Granularity(Base), cancellationToken).ConfigureAwait(false);
                await CopyAsync(target, runs, Granularity(Base), cancellationToken).ConfigureAwait(false);
                await target.FlushAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            if (reopened && Base.IsOpen && (Base.Permissions & BlockPermissions.Write) == 0)
                await graph.ReopenAsync(Base, readOnly: true, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>QEMU's default dirty-bitmap granularity for the base: its cluster size within [4 KiB, 64 KiB], else 64 KiB.</summary>
    private static long Granularity(BlockNode node) => node.Impl.ClusterSize is { } cluster and > 0 ? Math.Clamp(cluster, 4096, 65536) : 65536;

    /// <summary>The granule-aligned runs allocated above the base, merged, in ascending order; sets <see cref="BytesTotal"/>.</summary>
    private async ValueTask<List<(long Start, long End)>> FindRunsAsync(long length, long granularity, CancellationToken cancellationToken)
    {
        var runs = new List<(long Start, long End)>();
        long total = 0;
        for (long offset = 0; offset < length;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (allocated, bytes) = await Top.IsAllocatedAboveAsync(Base, offset, length - offset).ConfigureAwait(false);
            bytes = Math.Max(bytes, 1);
            if (allocated)
            {
                long start = offset / granularity * granularity;
                long end = Math.Min(length, (offset + bytes + granularity - 1) / granularity * granularity);
                if (runs.Count > 0 && runs[^1].End >= start)
                {
                    var last = runs[^1];
                    long merged = Math.Max(last.End, end);
                    total += merged - last.End;
                    runs[^1] = (last.Start, merged);
                }
                else
                {
                    total += end - start;
                    runs.Add((start, end));
                }
            }
            offset += bytes;
        }
        Volatile.Write(ref _bytesTotal, total);
        return runs;
    }

    private async ValueTask CopyAsync(BlockBackend target, List<(long Start, long End)> runs, long granularity, CancellationToken cancellationToken)
    {
        var buffer = Base.Graph.Buffers.Rent(MaxPieceBytes);
        var clock = Stopwatch.StartNew();
        try
        {
            foreach (var (start, end) in runs)
            {
                for (long pos = start; pos < end;)
                {
                    // As a job's rate limit: a piece starts once the pieces before it fit the rate (the first at once).
                    await ThrottleAsync(BytesDone, clock, cancellationToken).ConfigureAwait(false);
                    // What the whole chain shows decides how the piece is written: data is copied, zeroes are written as
                    // zeroes, but only over whole granules (a smaller zero run is copied with its neighbours).
                    var (status, _) = await Top.GetBlockStatusAboveAsync(pos, Math.Min(end - pos, int.MaxValue)).ConfigureAwait(false);
                    long bytes = status.Bytes - status.Bytes % granularity;
                    bool zero = status.Has(BlockStatusFlags.Zero) && !status.Has(BlockStatusFlags.Data);
                    if (bytes < granularity)
                    {
                        bytes = granularity;
                        zero = false;
                    }
                    bytes = Math.Min(bytes, end - pos);
                    if (zero)
                    {
                        await target.WriteZeroesAsync(pos, bytes, RequestFlags.MayUnmap).ConfigureAwait(false);
                    }
                    else
                    {
                        bytes = Math.Min(bytes, MaxPieceBytes);
                        var piece = buffer.Memory[..(int)bytes];
                        await Top.ReadAsync(pos, piece).ConfigureAwait(false);
                        await target.WriteAsync(pos, piece).ConfigureAwait(false);
                    }
                    pos += bytes;
                    long done = Interlocked.Add(ref _bytesDone, bytes);
                    _options.Progress?.Invoke(done, BytesTotal);
                }
            }
        }
        finally
        {
            buffer.Return(clear: true);
        }
    }

    /// <summary>Sleeps until <paramref name="done"/> bytes are within the rate limit.</summary>
    private async ValueTask ThrottleAsync(long done, Stopwatch clock, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_options.RateLimit <= 0)
            return;
        var due = TimeSpan.FromSeconds((double)done / _options.RateLimit);
        var wait = due - clock.Elapsed;
        if (wait > TimeSpan.Zero)
            await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
    }
}
