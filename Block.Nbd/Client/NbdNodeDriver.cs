using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Nbd.Protocol;

namespace Block.Nbd.Client;

/// <summary>One open <c>nbd</c> node: requests go to the export over one <see cref="NbdClient"/> connection.</summary>
internal sealed class NbdNodeDriver : NodeDriver
{
    private readonly NbdClient _client;
    private readonly NbdExportInfo _export;
    private readonly string _filename;
    private readonly BlockLimits _limits;

    public NbdNodeDriver(BlockNode node, NbdClient client, string filename)
        : base(node)
    {
        _client = client;
        _export = client.Export;
        _filename = filename;
        _limits = LimitsFor(_export);
    }

    /// <summary>
    /// The server's block sizes as the node's limits: the minimum is the request alignment (without one, 1 when the
    /// size is not sector aligned or block status is on, else 512, so that an old server never sees sub-sector
    /// requests); the maximum payload, at most 32 MiB, bounds reads, writes and write-zeroes.
    /// </summary>
    private static BlockLimits LimitsFor(NbdExportInfo export)
    {
        int min = (int)export.MinBlock;
        if (min == 0)
            min = export.Size % 512 != 0 || export.BaseAllocationContext != null ? 1 : 512;
        long max = export.MaxBlock == 0 ? NbdProtocol.MaxPayload : Math.Min(export.MaxBlock, NbdProtocol.MaxPayload);
        max -= max % min;
        return new BlockLimits
        {
            RequestAlignment = min,
            MaxTransfer = (int)max,
            OptimalTransfer = export.PreferredBlock > (uint)min ? (int)Math.Min(export.PreferredBlock, max) : 0,
            MaxWriteZeroes = max,
            MaxDiscard = int.MaxValue - int.MaxValue % min,
        };
    }

    public override BlockLimits Limits => _limits;

    public override long Length => _export.Size;

    public override string Filename => _filename;

    public override long? AllocatedSize => null;

    /// <remarks>QEMU's nbd driver has no <c>bdrv_get_info</c>, so <c>qemu-img info</c> shows no dirty flag.</remarks>
    public override bool HasDriverInfo => false;

    /// <remarks>An export's unwritten areas are whatever the server holds; a copy into it must write zeroes.</remarks>
    public override bool HasZeroInit => false;

    public override RequestFlags SupportedWriteFlags => _export.Has(NbdProtocol.TxSendFua) ? RequestFlags.Fua : RequestFlags.None;

    public override RequestFlags SupportedZeroFlags
    {
        get
        {
            if (!_export.Has(NbdProtocol.TxSendWriteZeroes))
                return RequestFlags.None;
            var flags = RequestFlags.MayUnmap;
            if (_export.Has(NbdProtocol.TxSendFua))
                flags |= RequestFlags.Fua;
            if (_export.Has(NbdProtocol.TxSendFastZero))
                flags |= RequestFlags.NoFallback;
            return flags;
        }
    }

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags) =>
        buffers.Length == 0 ? default : _client.ReadAsync(offset, buffers);

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags) =>
        _client.WriteAsync(offset, buffers, (flags & RequestFlags.Fua) != 0 && _export.Has(NbdProtocol.TxSendFua));

    public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        if (!_export.Has(NbdProtocol.TxSendWriteZeroes))
            return ValueTask.FromException(new BlockException(Errno.ENOTSUP, "write-zeroes not supported"));
        ushort command = 0;
        if ((flags & RequestFlags.Fua) != 0 && _export.Has(NbdProtocol.TxSendFua))
            command |= NbdProtocol.CmdFlagFua;
        if ((flags & RequestFlags.MayUnmap) == 0)
            command |= NbdProtocol.CmdFlagNoHole;
        if ((flags & RequestFlags.NoFallback) != 0)
        {
            if (!_export.Has(NbdProtocol.TxSendFastZero))
                return ValueTask.FromException(new BlockException(Errno.ENOTSUP, "fast write-zeroes not supported"));
            command |= NbdProtocol.CmdFlagFastZero;
        }
        return _client.WriteZeroesAsync(offset, (uint)length, command);
    }

    public override ValueTask DiscardAsync(long offset, long length)
    {
        if (!_export.Has(NbdProtocol.TxSendTrim))
            return ValueTask.FromException(new BlockException(Errno.ENOTSUP, "discard not supported"));
        return _client.TrimAsync(offset, (uint)length, fua: false);
    }

    public override ValueTask FlushToDiskAsync() =>
        _export.Has(NbdProtocol.TxSendFlush) ? _client.FlushAsync() : default;

    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        if (_export.BaseAllocationContext is null)
            return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid, length, offset, Node);
        // One request answers up to the largest aligned 32-bit length; the caller asks again for the rest.
        long ask = Math.Min(length, uint.MaxValue - uint.MaxValue % (uint)_limits.RequestAlignment);
        var (extent, state) = await _client.BlockStatusAsync(offset, (uint)ask).ConfigureAwait(false);
        var flags = BlockStatusFlags.OffsetValid;
        if ((state & NbdProtocol.StateHole) == 0)
            flags |= BlockStatusFlags.Data;
        if ((state & NbdProtocol.StateZero) != 0)
            flags |= BlockStatusFlags.Zero;
        if ((flags & (BlockStatusFlags.Data | BlockStatusFlags.Zero)) != 0)
            flags |= BlockStatusFlags.Allocated;
        return new BlockStatus(flags, extent, offset, Node);
    }

    public override async ValueTask DisposeAsync()
    {
        await _client.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
