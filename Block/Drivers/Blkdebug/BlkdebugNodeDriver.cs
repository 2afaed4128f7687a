using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Drivers.Blkdebug;

/// <summary>One blkdebug node: passes requests to its image after applying the injection rules.</summary>
internal sealed class BlkdebugNodeDriver : NodeDriver
{
    private readonly BlockNode _image;
    private readonly BlockLimits _limits;
    private readonly List<BlkdebugInjectErrorOptions> _rules;

    public BlkdebugNodeDriver(BlockNode node, BlockNode image, BlockLimits limits, IReadOnlyList<BlkdebugInjectErrorOptions> rules)
        : base(node)
    {
        _image = image;
        _limits = limits;
        _rules = [.. rules];
    }

    public override BlockLimits Limits => _limits;

    public override RequestFlags SupportedWriteFlags => RequestFlags.Fua;

    public override RequestFlags SupportedZeroFlags => RequestFlags.Fua | RequestFlags.MayUnmap | RequestFlags.NoFallback;

    public override long Length => _image.Length;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags) =>
        Check("read_aio", offset, buffers.Length) ?? _image.ReadAsync(offset, buffers, flags);

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags) =>
        Check("write_aio", offset, buffers.Length) ?? _image.WriteAsync(offset, buffers, flags);

    public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags) =>
        Check("write_zeroes", offset, length) ?? _image.WriteZeroesAsync(offset, length, flags);

    public override ValueTask DiscardAsync(long offset, long length) =>
        Check("discard", offset, length) ?? _image.DiscardAsync(offset, length);

    public override ValueTask FlushToDiskAsync() => Check("flush_to_disk", 0, 0) ?? default;

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero) =>
        new(new BlockStatus(BlockStatusFlags.Raw | BlockStatusFlags.OffsetValid, length, offset, _image));

    public override ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact) =>
        _image.TruncateAsync(length, preallocation, exact);

    private ValueTask? Check(string ev, long offset, long bytes)
    {
        lock (_rules)
        {
            if (_rules.Count == 0)
                return null;
            for (int i = 0; i < _rules.Count; i++)
            {
                var rule = _rules[i];
                if (rule.Event != ev)
                    continue;
                if (rule.Sector >= 0)
                {
                    long start = rule.Sector * 512;
                    if (!(offset < start + 512 && start < offset + Math.Max(bytes, 1)))
                        continue;
                }
                if (rule.Once)
                    _rules.RemoveAt(i);
                var errno = (Errno)rule.Errno;
                return ValueTask.FromException(new BlockException(errno, $"blkdebug: injected error: {ErrnoText.Describe(errno)}"));
            }
        }
        return null;
    }
}
