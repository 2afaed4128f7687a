using Block.Graph;
using Block.Io;

namespace Block.Drivers.Null;

/// <summary>One open null device.</summary>
internal sealed class NullNodeDriver : NodeDriver
{
    private readonly string _name;
    private readonly long _length;
    private readonly long _latencyNs;
    private readonly bool _readZeroes;
    private readonly bool _asynchronous;

    public NullNodeDriver(BlockNode node, string name, long length, long latencyNs, bool readZeroes, bool asynchronous)
        : base(node)
    {
        _name = name;
        _length = length;
        _latencyNs = latencyNs;
        _readZeroes = readZeroes;
        _asynchronous = asynchronous;
    }

    public override long Length => _length;

    public override string Filename => _name + "://";

    public override long? AllocatedSize => null;

    public override RequestFlags SupportedWriteFlags => RequestFlags.Fua;

    public override RequestFlags SupportedZeroFlags => RequestFlags.Fua | RequestFlags.MayUnmap;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (_readZeroes)
            buffers.Clear();
        return Complete();
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags) => Complete();

    public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags) => Complete();

    public override ValueTask DiscardAsync(long offset, long length) => Complete();

    public override ValueTask FlushToDiskAsync() => Complete();

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        var flags = BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated;
        if (_readZeroes)
            flags |= BlockStatusFlags.Zero;
        return new(new BlockStatus(flags, length, offset, Node));
    }

    private ValueTask Complete()
    {
        if (_latencyNs > 0)
            return PreciseDelay.WaitAsync(_latencyNs);
        if (_asynchronous)
            return DeferredCompletion.Yield();
        return default;
    }
}
