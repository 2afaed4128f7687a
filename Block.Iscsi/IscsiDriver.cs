using System.Text;
using Block.Drivers;
using Block.Iscsi.Options;
using Block.Iscsi.Session;
using Block.Options;

namespace Block.Iscsi;

/// <summary>
/// The <c>iscsi</c> protocol driver: a LUN of an iSCSI target, read and written through libiscsi, from QAPI
/// <c>BlockdevOptionsIscsi</c> or QEMU's <c>iscsi://[user[%password]@]host[:port]/target-iqn/lun</c> file names.
/// </summary>
/// <remarks>
/// libiscsi, as QEMU: it is the initiator QEMU links, so logins (CHAP, digests, redirects) and reconnects behave as
/// QEMU's do against the same target, and its asynchronous interface lets one thread per connection keep any number
/// of commands in flight. Only the TCP transport is offered: iSER needs RDMA hardware, and a <c>transport=iser</c>
/// node is refused at open with a message saying so.
/// </remarks>
public sealed class IscsiDriver : BlockDriver
{
    /// <summary>QEMU's initiator name when none is given (<c>iqn.2008-11.org.linux-kvm</c>, with no VM name in qemu-img).</summary>
    public const string DefaultInitiatorName = "iqn.2008-11.org.linux-kvm";

    /// <inheritdoc />
    public override string Name => "iscsi";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes { get; } = ["iscsi", "iser"];

    /// <inheritdoc />
    /// <remarks>A LUN cannot be made: "creating" one checks that it exists and is large enough, as QEMU's does.</remarks>
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
    ];

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename) => IscsiUrl.Parse(filename);

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string? filename = reader.String("filename");
        var transport = reader.Enum<IscsiTransport>("transport");
        string? portal = reader.String("portal");
        string? target = reader.String("target");
        long? lun = reader.Int("lun", 0, int.MaxValue);
        string? user = reader.String("user");
        string? password = reader.String("password");
        string? passwordSecret = reader.String("password-secret");
        string? initiatorName = reader.String("initiator-name");
        var headerDigest = reader.Enum<IscsiHeaderDigest>("header-digest");
        long? timeout = reader.Int("timeout", 0, int.MaxValue);

        BlockdevOptionsIscsi options;
        if (filename != null)
        {
            if (transport != null || portal != null || target != null || lun != null)
                throw new BlockOptionsException("transport, portal, target and lun cannot be used at the same time as a file name");
            var parsed = IscsiUrl.Parse(filename);
            options = parsed with
            {
                User = user ?? parsed.User,
                Password = password ?? parsed.Password,
            };
        }
        else
        {
            options = new BlockdevOptionsIscsi
            {
                Driver = Name,
                Transport = transport ?? throw reader.Missing("transport"),
                Portal = portal ?? throw reader.Missing("portal"),
                Target = target ?? throw reader.Missing("target"),
                Lun = lun,
                User = user,
                Password = password,
                FromText = reader.Keyval,
            };
        }
        if (options.Password != null && passwordSecret != null)
            throw new BlockOptionsException("'password' and 'password-secret' cannot be used together");
        return options with
        {
            PasswordSecret = passwordSecret,
            InitiatorName = initiatorName,
            HeaderDigest = headerDigest,
            Timeout = timeout,
        };
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = (BlockdevOptionsIscsi)context.Options;
        var settings = Settings(options, context.Graph);
        var session = await Task.Run(() => IscsiSession.Connect(settings, context.Node), cancellationToken).ConfigureAwait(false);
        // QEMU 7.2 refuses a read-write open of a LUN whose MODE SENSE says write-protected (as bdrv_apply_auto_read_only
        // words it); a read-only open goes on.
        if (session.Info.WriteProtected && !context.Node.ReadOnly)
        {
            session.Dispose();
            throw new BlockException(Errno.EACCES, "LUN is write protected");
        }
        return new IscsiNodeDriver(context.Node, session, options);
    }

    /// <inheritdoc />
    public override async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ulong size = request.Size ?? 0;
        var settings = Settings(IscsiUrl.Parse(request.Filename), request.Graph);
        using var session = await Task.Run(() => IscsiSession.Connect(settings, null), cancellationToken).ConfigureAwait(false);
        if ((ulong)session.Info.Length < size)
            throw new BlockException(Errno.ENOSPC, "iSCSI: Device too small");
    }

    private static IscsiSessionSettings Settings(BlockdevOptionsIscsi options, Graph.BlockGraph graph)
    {
        if (options.Transport == IscsiTransport.Iser)
            throw new BlockException(Errno.ENOTSUP, "iSCSI: the iser transport is not supported (it needs RDMA); use transport=tcp");
        string? password = options.Password;
        if (options.PasswordSecret is { } secret)
            password = Encoding.UTF8.GetString(graph.Secrets.Get(secret).Span);
        if (options.User is null && password != null)
            throw new BlockException(Errno.EINVAL, "iSCSI: a CHAP password needs a user");
        return new IscsiSessionSettings
        {
            Portal = options.Portal,
            Target = options.Target,
            Lun = (int)(options.Lun ?? 0),
            InitiatorName = options.InitiatorName ?? DefaultInitiatorName,
            HeaderDigest = (options.HeaderDigest ?? IscsiHeaderDigest.NoneCrc32c) switch
            {
                IscsiHeaderDigest.None => 0,
                IscsiHeaderDigest.NoneCrc32c => 1,
                IscsiHeaderDigest.Crc32cNone => 2,
                _ => 3,
            },
            User = options.User,
            Password = password,
            TimeoutSeconds = (int)(options.Timeout ?? 0),
        };
    }
}
