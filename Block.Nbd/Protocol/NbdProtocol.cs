namespace Block.Nbd.Protocol;

/// <summary>
/// The numbers of the NBD protocol (NetworkBlockDevice/nbd <c>doc/proto.md</c>): magics, options, reply types,
/// flags, commands and error values. Everything on the wire is big-endian.
/// </summary>
public static class NbdProtocol
{
    /// <summary>The first eight bytes a server sends: <c>NBDMAGIC</c>.</summary>
    public const ulong NbdMagic = 0x4e42444d41474943;

    /// <summary>The newstyle magic (<c>IHAVEOPT</c>), after <see cref="NbdMagic"/> and before every option request.</summary>
    public const ulong OptionMagic = 0x49484156454F5054;

    /// <summary>The magic of an option reply.</summary>
    public const ulong OptionReplyMagic = 0x0003e889045565a9;

    /// <summary>The magic of a transmission request.</summary>
    public const uint RequestMagic = 0x25609513;

    /// <summary>The magic of a simple reply.</summary>
    public const uint SimpleReplyMagic = 0x67446698;

    /// <summary>The magic of a structured reply chunk.</summary>
    public const uint StructuredReplyMagic = 0x668e33ef;

    /// <summary>Size of a request header.</summary>
    public const int RequestHeaderSize = 28;

    /// <summary>Size of a simple reply header.</summary>
    public const int SimpleReplyHeaderSize = 16;

    /// <summary>Size of a structured reply chunk header.</summary>
    public const int ChunkHeaderSize = 20;

    /// <summary>The largest payload of a read or write we accept: 32 MiB, what portable clients stay under.</summary>
    public const int MaxPayload = 32 << 20;

    /// <summary>The longest export name, description or metadata context query we accept (the spec's 4096).</summary>
    public const int MaxString = 4096;

    /// <summary>The TCP port IANA gave NBD.</summary>
    public const int DefaultPort = 10809;

    /// <summary>Handshake flag (server) and client flag: fixed newstyle.</summary>
    public const ushort FlagFixedNewstyle = 1 << 0;

    /// <summary>Handshake flag (server) and client flag: no 124 zero bytes after <c>NBD_OPT_EXPORT_NAME</c>.</summary>
    public const ushort FlagNoZeroes = 1 << 1;

    /// <summary><c>NBD_OPT_EXPORT_NAME</c>.</summary>
    public const uint OptExportName = 1;
    /// <summary><c>NBD_OPT_ABORT</c>.</summary>
    public const uint OptAbort = 2;
    /// <summary><c>NBD_OPT_LIST</c>.</summary>
    public const uint OptList = 3;
    /// <summary><c>NBD_OPT_STARTTLS</c>.</summary>
    public const uint OptStartTls = 5;
    /// <summary><c>NBD_OPT_INFO</c>.</summary>
    public const uint OptInfo = 6;
    /// <summary><c>NBD_OPT_GO</c>.</summary>
    public const uint OptGo = 7;
    /// <summary><c>NBD_OPT_STRUCTURED_REPLY</c>.</summary>
    public const uint OptStructuredReply = 8;
    /// <summary><c>NBD_OPT_LIST_META_CONTEXT</c>.</summary>
    public const uint OptListMetaContext = 9;
    /// <summary><c>NBD_OPT_SET_META_CONTEXT</c>.</summary>
    public const uint OptSetMetaContext = 10;

    /// <summary><c>NBD_REP_ACK</c>.</summary>
    public const uint RepAck = 1;
    /// <summary><c>NBD_REP_SERVER</c>.</summary>
    public const uint RepServer = 2;
    /// <summary><c>NBD_REP_INFO</c>.</summary>
    public const uint RepInfo = 3;
    /// <summary><c>NBD_REP_META_CONTEXT</c>.</summary>
    public const uint RepMetaContext = 4;
    /// <summary><c>NBD_REP_ERR_UNSUP</c>.</summary>
    public const uint RepErrUnsup = 0x80000001;
    /// <summary><c>NBD_REP_ERR_POLICY</c>.</summary>
    public const uint RepErrPolicy = 0x80000002;
    /// <summary><c>NBD_REP_ERR_INVALID</c>.</summary>
    public const uint RepErrInvalid = 0x80000003;
    /// <summary><c>NBD_REP_ERR_PLATFORM</c>.</summary>
    public const uint RepErrPlatform = 0x80000004;
    /// <summary><c>NBD_REP_ERR_TLS_REQD</c>.</summary>
    public const uint RepErrTlsReqd = 0x80000005;
    /// <summary><c>NBD_REP_ERR_UNKNOWN</c>.</summary>
    public const uint RepErrUnknown = 0x80000006;
    /// <summary><c>NBD_REP_ERR_SHUTDOWN</c>.</summary>
    public const uint RepErrShutdown = 0x80000007;
    /// <summary><c>NBD_REP_ERR_BLOCK_SIZE_REQD</c>.</summary>
    public const uint RepErrBlockSizeReqd = 0x80000008;
    /// <summary><c>NBD_REP_ERR_TOO_BIG</c>.</summary>
    public const uint RepErrTooBig = 0x80000009;

    /// <summary><c>NBD_INFO_EXPORT</c>.</summary>
    public const ushort InfoExport = 0;
    /// <summary><c>NBD_INFO_NAME</c>.</summary>
    public const ushort InfoName = 1;
    /// <summary><c>NBD_INFO_DESCRIPTION</c>.</summary>
    public const ushort InfoDescription = 2;
    /// <summary><c>NBD_INFO_BLOCK_SIZE</c>.</summary>
    public const ushort InfoBlockSize = 3;

    /// <summary>Transmission flag: flags are valid (always set).</summary>
    public const ushort TxHasFlags = 1 << 0;
    /// <summary>Transmission flag: the export is read-only.</summary>
    public const ushort TxReadOnly = 1 << 1;
    /// <summary>Transmission flag: FLUSH is accepted.</summary>
    public const ushort TxSendFlush = 1 << 2;
    /// <summary>Transmission flag: the FUA command flag is accepted.</summary>
    public const ushort TxSendFua = 1 << 3;
    /// <summary>Transmission flag: TRIM is accepted.</summary>
    public const ushort TxSendTrim = 1 << 5;
    /// <summary>Transmission flag: WRITE_ZEROES is accepted.</summary>
    public const ushort TxSendWriteZeroes = 1 << 6;
    /// <summary>Transmission flag: the DF command flag is accepted.</summary>
    public const ushort TxSendDf = 1 << 7;
    /// <summary>Transmission flag: several connections see one another's writes once flushed.</summary>
    public const ushort TxCanMultiConn = 1 << 8;
    /// <summary>Transmission flag: CACHE (prefetch) is accepted.</summary>
    public const ushort TxSendCache = 1 << 10;
    /// <summary>Transmission flag: the FAST_ZERO command flag is accepted.</summary>
    public const ushort TxSendFastZero = 1 << 11;

    /// <summary>Command flag: force unit access.</summary>
    public const ushort CmdFlagFua = 1 << 0;
    /// <summary>Command flag: WRITE_ZEROES must not punch a hole.</summary>
    public const ushort CmdFlagNoHole = 1 << 1;
    /// <summary>Command flag: READ in one chunk.</summary>
    public const ushort CmdFlagDf = 1 << 2;
    /// <summary>Command flag: BLOCK_STATUS returns one extent.</summary>
    public const ushort CmdFlagReqOne = 1 << 3;
    /// <summary>Command flag: WRITE_ZEROES fails fast rather than write zeroes slowly.</summary>
    public const ushort CmdFlagFastZero = 1 << 4;

    /// <summary><c>NBD_CMD_READ</c>.</summary>
    public const ushort CmdRead = 0;
    /// <summary><c>NBD_CMD_WRITE</c>.</summary>
    public const ushort CmdWrite = 1;
    /// <summary><c>NBD_CMD_DISC</c>.</summary>
    public const ushort CmdDisc = 2;
    /// <summary><c>NBD_CMD_FLUSH</c>.</summary>
    public const ushort CmdFlush = 3;
    /// <summary><c>NBD_CMD_TRIM</c>.</summary>
    public const ushort CmdTrim = 4;
    /// <summary><c>NBD_CMD_CACHE</c>.</summary>
    public const ushort CmdCache = 5;
    /// <summary><c>NBD_CMD_WRITE_ZEROES</c>.</summary>
    public const ushort CmdWriteZeroes = 6;
    /// <summary><c>NBD_CMD_BLOCK_STATUS</c>.</summary>
    public const ushort CmdBlockStatus = 7;

    /// <summary>Structured reply flag: the last chunk of a reply.</summary>
    public const ushort ReplyFlagDone = 1 << 0;
    /// <summary>Chunk type <c>NBD_REPLY_TYPE_NONE</c>.</summary>
    public const ushort ReplyTypeNone = 0;
    /// <summary>Chunk type <c>NBD_REPLY_TYPE_OFFSET_DATA</c>.</summary>
    public const ushort ReplyTypeOffsetData = 1;
    /// <summary>Chunk type <c>NBD_REPLY_TYPE_OFFSET_HOLE</c>.</summary>
    public const ushort ReplyTypeOffsetHole = 2;
    /// <summary>Chunk type <c>NBD_REPLY_TYPE_BLOCK_STATUS</c>.</summary>
    public const ushort ReplyTypeBlockStatus = 5;
    /// <summary>Chunk type <c>NBD_REPLY_TYPE_ERROR</c>.</summary>
    public const ushort ReplyTypeError = 0x8001;
    /// <summary>Chunk type <c>NBD_REPLY_TYPE_ERROR_OFFSET</c>.</summary>
    public const ushort ReplyTypeErrorOffset = 0x8002;

    /// <summary>The oldstyle handshake's second magic (after <see cref="NbdMagic"/>), which QEMU 7.2's client no longer speaks.</summary>
    public const ulong OldstyleMagic = 0x00420281861253;

    /// <summary><c>base:allocation</c> flag: the extent is a hole.</summary>
    public const uint StateHole = 1 << 0;
    /// <summary><c>base:allocation</c> flag: the extent reads as zeroes.</summary>
    public const uint StateZero = 1 << 1;

    /// <summary><c>qemu:dirty-bitmap:NAME</c> flag: the extent is dirty.</summary>
    public const uint StateDirty = 1 << 0;

    /// <summary>The metadata context every server offers.</summary>
    public const string BaseAllocation = "base:allocation";

    /// <summary>NBD error: operation not permitted.</summary>
    public const uint EPERM = 1;
    /// <summary>NBD error: I/O error.</summary>
    public const uint EIO = 5;
    /// <summary>NBD error: out of memory.</summary>
    public const uint ENOMEM = 12;
    /// <summary>NBD error: invalid argument.</summary>
    public const uint EINVAL = 22;
    /// <summary>NBD error: no space left.</summary>
    public const uint ENOSPC = 28;
    /// <summary>NBD error: value too large.</summary>
    public const uint EOVERFLOW = 75;
    /// <summary>NBD error: not supported.</summary>
    public const uint ENOTSUP = 95;
    /// <summary>NBD error: server shutting down.</summary>
    public const uint ESHUTDOWN = 108;

    /// <summary>The NBD error value for a local errno, mapped as the spec asks (EDQUOT and EFBIG count as ENOSPC).</summary>
    public static uint ToNbdError(Errno errno) => errno switch
    {
        Errno.EPERM or Errno.EROFS => EPERM,
        Errno.EIO => EIO,
        Errno.ENOMEM => ENOMEM,
        Errno.ENOSPC or Errno.EFBIG => ENOSPC,
        Errno.ENOTSUP => ENOTSUP,
        _ => EINVAL,
    };
}
