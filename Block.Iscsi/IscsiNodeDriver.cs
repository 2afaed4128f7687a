using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Iscsi.Options;
using Block.Iscsi.Session;
using Block.Qapi;

namespace Block.Iscsi;

/// <summary>
/// One open iscsi node: each request becomes one SCSI command on the node's session, sent and completed by the
/// session's event-loop thread. The LUN's block size and VPD block limits are the node's limits, so the request
/// path pads, splits and aligns every request to what the target accepts before it gets here.
/// </summary>
internal sealed class IscsiNodeDriver : NodeDriver
{
    private readonly IscsiSession _session;
    private readonly BlockdevOptionsIscsi _options;
    private readonly BlockLimits _limits;
    private readonly int _blockShift;
    private volatile bool _writeSameRefused;

    public IscsiNodeDriver(BlockNode node, IscsiSession session, BlockdevOptionsIscsi options)
        : base(node)
    {
        _session = session;
        _options = options;
        _blockShift = System.Numerics.BitOperations.Log2((uint)session.Info.BlockSize);
        _limits = LimitsOf(session.Info);
    }

    /// <summary>
    /// QEMU's reading of the LUN's limits: requests in whole blocks; transfers, discards and write-zeroes no larger
    /// than the Block Limits page allows; discards and write-zeroes aligned to its unmap granularity.
    /// </summary>
    internal static BlockLimits LimitsOf(IscsiLunInfo info)
    {
        long blockSize = info.BlockSize;
        static int ClampInt(long bytes, long blockSize) => (int)Math.Min(bytes, int.MaxValue / blockSize * blockSize);
        long maxCommandBlocks = uint.MaxValue;
        long maxUnmap = info.MaxUnmapBlocks is > 0 and < uint.MaxValue ? info.MaxUnmapBlocks : maxCommandBlocks;
        long maxWriteSame = info.MaxWriteSameBlocks is > 0 and < uint.MaxValue ? (long)info.MaxWriteSameBlocks : maxCommandBlocks;
        int unmapGranularity = info.OptimalUnmapGranularity > 1 ? ClampInt(info.OptimalUnmapGranularity * blockSize, blockSize) : 0;
        return new BlockLimits
        {
            RequestAlignment = info.BlockSize,
            MaxTransfer = info.MaxTransferBlocks > 0 ? ClampInt(info.MaxTransferBlocks * blockSize, blockSize) : 0,
            OptimalTransfer = info.OptimalTransferBlocks > 0 ? ClampInt(info.OptimalTransferBlocks * blockSize, blockSize) : 0,
            DiscardAlignment = unmapGranularity,
            MaxDiscard = maxUnmap * blockSize,
            WriteZeroesAlignment = unmapGranularity,
            MaxWriteZeroes = maxWriteSame * blockSize,
        };
    }

    public override long Length => _session.Info.Length;

    public override BlockLimits Limits => _limits;

    public override RequestFlags SupportedZeroFlags => _session.Info.Lbpws ? RequestFlags.MayUnmap : RequestFlags.None;

    /// <remarks>A LUN has no file whose allocation could be measured: <c>disk size: unavailable</c>, as in QEMU.</remarks>
    public override long? AllocatedSize => null;

    /// <remarks>QEMU's iscsi driver has no <c>bdrv_has_zero_init</c>: a LUN holds whatever was written before.</remarks>
    public override bool HasZeroInit => false;

    /// <summary>QEMU's <c>json:</c> name of the node: the driver and the options that select the LUN and the login.</summary>
    public override string Filename
    {
        get
        {
            var o = _options;
            var json = new JsonObject
            {
                ["driver"] = "iscsi",
                ["transport"] = QapiEnum<IscsiTransport>.ToWire(o.Transport),
                ["portal"] = o.Portal,
                ["target"] = o.Target,
            };
            if (o.Lun is { } lun)
                json["lun"] = o.FromText ? lun.ToString(System.Globalization.CultureInfo.InvariantCulture) : lun;
            if (o.User != null)
                json["user"] = o.User;
            if (o.Password != null)
                json["password"] = o.Password;
            if (o.PasswordSecret != null)
                json["password-secret"] = o.PasswordSecret;
            if (o.InitiatorName != null)
                json["initiator-name"] = o.InitiatorName;
            if (o.HeaderDigest is { } digest)
                json["header-digest"] = QapiEnum<IscsiHeaderDigest>.ToWire(digest);
            return "json:" + QemuJson.Compact(json);
        }
    }

    /// <remarks>As QEMU: FUA is sent only to a LUN whose MODE SENSE sets DPOFUA; elsewhere the request path flushes after the write.</remarks>
    public override RequestFlags SupportedWriteFlags => _session.Info.DpoFua ? RequestFlags.Fua : RequestFlags.None;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags) =>
        Transfer(IscsiCommandKind.Read, offset, buffers, fua: false);

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags) =>
        Transfer(IscsiCommandKind.Write, offset, buffers, fua: (flags & RequestFlags.Fua) != 0 && _session.Info.DpoFua);

    private ValueTask Transfer(IscsiCommandKind kind, long offset, IoVector buffers, bool fua)
    {
        if (buffers.Length == 0)
            return default;
        if (_session.Failure is { } failure)
            return ValueTask.FromException(new BlockException(Errno.EIO, failure));
        var command = _session.Rent();
        command.SetBuffers(buffers);
        var pending = command.Start(kind, (ulong)(offset >> _blockShift), (uint)(buffers.Length >> _blockShift), fua);
        _session.Submit(command);
        return pending;
    }

    public override ValueTask FlushToDiskAsync() => Send(IscsiCommandKind.Flush, 0, 0, unmap: false);

    /// <remarks>Without LBPU the target has no UNMAP: declined, and the request path drops the discard, as QEMU does.</remarks>
    public override ValueTask DiscardAsync(long offset, long length)
    {
        if (!_session.Info.Lbpu)
            return ValueTask.FromException(new BlockException(Errno.ENOTSUP, "iSCSI: the LUN does not support UNMAP"));
        return SendRange(IscsiCommandKind.Unmap, offset, length, unmap: false);
    }

    /// <remarks>
    /// WRITE SAME(16) of one zero block, with the UNMAP bit when the caller allows it and the LUN has LBPWS. A target
    /// that refuses WRITE SAME is asked no more: later requests decline at once and the request path writes zeroes.
    /// </remarks>
    public override async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        if (_writeSameRefused)
            throw new BlockException(Errno.ENOTSUP, "iSCSI: the LUN does not support WRITE SAME");
        bool unmap = (flags & RequestFlags.MayUnmap) != 0 && _session.Info.Lbpws;
        try
        {
            await SendRange(IscsiCommandKind.WriteZeroes, offset, length, unmap).ConfigureAwait(false);
        }
        catch (BlockException e) when (e.Errno == Errno.ENOTSUP)
        {
            _writeSameRefused = true;
            throw;
        }
    }

    private ValueTask SendRange(IscsiCommandKind kind, long offset, long length, bool unmap)
    {
        long end = Math.Min(offset + length, Length);
        if (end <= offset)
            return default;
        return Send(kind, (ulong)(offset >> _blockShift), (uint)((end - offset) >> _blockShift), unmap);
    }

    private ValueTask Send(IscsiCommandKind kind, ulong lba, uint blocks, bool unmap)
    {
        if (_session.Failure is { } failure)
            return ValueTask.FromException(new BlockException(Errno.EIO, failure));
        var command = _session.Rent();
        command.Unmap = unmap;
        var pending = command.Start(kind, lba, blocks);
        _session.Submit(command);
        return pending;
    }

    /// <remarks>
    /// GET LBA STATUS when the LUN has LBPME (else everything is data, as in QEMU): mapped blocks are data,
    /// deallocated and anchored ones are not, and read as zeroes with LBPRZ. Offsets map one to one to the LUN.
    /// </remarks>
    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        if (!_session.Info.Lbpme)
            return new(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated, length, offset, Node));
        if (_session.Failure is { } failure)
            return ValueTask.FromException<BlockStatus>(new BlockException(Errno.EIO, failure));
        var command = _session.Rent();
        command.StatusLimitBytes = length;
        command.StatusOffset = offset;
        var pending = command.StartStatus((ulong)(offset >> _blockShift));
        _session.Submit(command);
        return pending;
    }

    public override async ValueTask DisposeAsync()
    {
        _session.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
