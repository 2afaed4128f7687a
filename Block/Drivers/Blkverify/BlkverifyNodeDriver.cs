using System.Buffers;
using Block.Graph;
using Block.Io;

namespace Block.Drivers.Blkverify;

/// <summary>
/// One blkverify node: reads both children at once and compares them, writes both at once, and serves the test
/// image's data, length and allocation.
/// </summary>
internal sealed class BlkverifyNodeDriver : NodeDriver
{
    private readonly BlockNode _test;
    private readonly BlockNode _raw;

    public BlkverifyNodeDriver(BlockNode node, BlockNode test, BlockNode raw)
        : base(node)
    {
        _test = test;
        _raw = raw;
    }

    public override long Length => _test.Length;

    public override RequestFlags SupportedWriteFlags => RequestFlags.Fua;

    // QEMU 7.2 reports no size on disk for the node ("disk size: unavailable"): it is two files, not one.
    public override long? AllocatedSize => null;

    // QEMU's filename for the node: both children's, raw first.
    public override string Filename => $"blkverify:{_raw.Filename}:{_test.Filename}";

    public override async ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        int length = buffers.Length;
        byte[] copy = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var (testError, rawError) = await BothAsync(_test.ReadAsync(offset, buffers, flags), _raw.ReadAsync(offset, copy.AsMemory(0, length), flags))
                .ConfigureAwait(false);
            CheckResults("read", offset, length, testError, rawError);
            long position = offset;
            int done = 0;
            foreach (var segment in buffers)
            {
                int same = segment.Span.CommonPrefixLength(copy.AsSpan(done, segment.Length));
                if (same < segment.Length)
                    throw Mismatch("read", offset, length, $"contents mismatch at offset {position + same}");
                position += segment.Length;
                done += segment.Length;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    public override async ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        var (testError, rawError) = await BothAsync(_test.WriteAsync(offset, buffers, flags), _raw.WriteAsync(offset, buffers, flags)).ConfigureAwait(false);
        CheckResults("write", offset, buffers.Length, testError, rawError);
    }

    // QEMU 7.2 has no zero-write of its own here and asserts on the generic one; zeroes go to both, as data would.
    public override async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        flags &= ~RequestFlags.NoFallback;
        var (testError, rawError) = await BothAsync(_test.WriteZeroesAsync(offset, length, flags), _raw.WriteZeroesAsync(offset, length, flags))
            .ConfigureAwait(false);
        CheckResults("write", offset, length, testError, rawError);
    }

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero) =>
        new(new BlockStatus(BlockStatusFlags.Raw | BlockStatusFlags.OffsetValid, length, offset, _test));

    /// <summary>Runs both requests to completion, so neither is left in flight, and returns what each threw.</summary>
    private static async ValueTask<(BlockException? Test, BlockException? Raw)> BothAsync(ValueTask test, ValueTask raw)
    {
        BlockException? testError = null, rawError = null;
        try
        {
            await test.ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            testError = e;
        }
        try
        {
            await raw.ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            rawError = e;
        }
        return (testError, rawError);
    }

    /// <summary>Both failed alike: the test image's error stands. One failed: a mismatch, with QEMU's -errno values.</summary>
    private static void CheckResults(string request, long offset, long bytes, BlockException? test, BlockException? raw)
    {
        if (test?.Errno != raw?.Errno)
            throw Mismatch(request, offset, bytes, $"return value mismatch {Code(test)} != {Code(raw)}");
        if (test != null)
            throw test;

        static int Code(BlockException? e) => e is null ? 0 : -(int)e.Errno;
    }

    private static BlkverifyMismatchException Mismatch(string request, long offset, long bytes, string what) =>
        new($"blkverify: {request} offset={offset} bytes={bytes} {what}");
}
