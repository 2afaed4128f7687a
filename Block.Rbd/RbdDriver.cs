using System.Numerics;
using Block.Drivers;
using Block.Options;
using Block.Rbd.Driver;
using Block.Rbd.Interop;
using Block.Rbd.Options;

namespace Block.Rbd;

/// <summary>
/// The <c>rbd</c> protocol driver: an image in a Ceph cluster, read and written through librbd's asynchronous calls,
/// from QEMU 7.2's <c>BlockdevOptionsRbd</c> or an <c>rbd:pool/image</c> file name.
/// </summary>
/// <remarks>
/// librbd itself rather than a RADOS client of our own: it is what QEMU links, so the striping, the object map,
/// exclusive locking, caching and every image feature behave as under QEMU, and the image stays usable by QEMU,
/// the kernel's rbd and the <c>rbd</c> tool.
/// </remarks>
public sealed class RbdDriver : BlockDriver
{
    /// <summary>
    /// Seconds an OSD or monitor operation, or the first contact with the monitors, may take before it fails with
    /// ETIMEDOUT, unless the configuration or the file name sets <c>rados_osd_op_timeout</c>,
    /// <c>rados_mon_op_timeout</c> or <c>client_mount_timeout</c>.
    /// </summary>
    /// <remarks>
    /// Ceph's defaults wait for ever for a dead OSD (QEMU 7.2 hangs a guest's I/O there); 30 s outlasts an OSD
    /// restart or a monitor election on a healthy cluster and still ends a request to a dead one.
    /// </remarks>
    public const int DefaultOpTimeoutSeconds = 30;

    /// <inheritdoc />
    public override string Name => "rbd";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes { get; } = ["rbd"];

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions { get; } =
    [
        new("cluster_size", CreateOptionType.Size, "RBD object size"),
        new("encrypt.cipher-alg", CreateOptionType.String, "Name of encryption cipher algorithm (allowed values: aes-128, aes-256)"),
        new("encrypt.format", CreateOptionType.String, "Encrypt the image, format choices: 'luks', 'luks2'"),
        new("encrypt.key-secret", CreateOptionType.String, "ID of secret providing LUKS passphrase"),
        new("password-secret", CreateOptionType.String, "ID of secret providing the password"),
        new("size", CreateOptionType.Size, "Virtual disk size"),
    ];

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename) => RbdFilename.Parse(filename);

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string? filename = reader.String("filename");
        string? pool = reader.String("pool");
        string? nspace = reader.String("namespace");
        string? image = reader.String("image");
        string? conf = reader.String("conf");
        string? snapshot = reader.String("snapshot");
        string? user = reader.String("user");
        var modes = reader.StringList("auth-client-required");
        string? keySecret = reader.String("key-secret") ?? reader.String("password-secret");
        var servers = reader.ObjectList("server");
        var encrypt = reader.Object("encrypt");
        string? encryptFormat = null;
        if (encrypt != null)
        {
            encryptFormat = encrypt.RequiredString("format");
            encrypt.Skip("key-secret");
            encrypt.Skip("parent");
            encrypt.Finish();
        }
        if (modes != null)
        {
            foreach (var mode in modes)
            {
                if (mode is not ("cephx" or "none"))
                    throw new BlockOptionsException($"Parameter '{reader.FullName("auth-client-required")}' does not accept value '{mode}'");
            }
        }
        List<RbdServerAddress>? serverList = null;
        if (servers != null)
        {
            serverList = new List<RbdServerAddress>(servers.Count);
            foreach (var server in servers)
            {
                serverList.Add(new RbdServerAddress(server.RequiredString("host"), server.RequiredString("port")));
                server.Finish();
            }
        }

        BlockdevOptionsRbd options;
        if (filename != null)
        {
            if (pool != null || image != null || nspace != null || conf != null || snapshot != null || user != null)
                throw new BlockOptionsException("rbd: 'filename' cannot be used together with pool, namespace, image, conf, snapshot or user");
            options = RbdFilename.Parse(filename);
        }
        else
        {
            options = new BlockdevOptionsRbd
            {
                Pool = pool ?? throw reader.Missing("pool"),
                Namespace = nspace,
                Image = image ?? throw reader.Missing("image"),
                Conf = conf,
                Snapshot = snapshot,
                User = user,
            };
        }
        return options with
        {
            AuthClientRequired = modes,
            KeySecret = keySecret,
            Server = serverList,
            EncryptFormat = encryptFormat,
        };
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = (BlockdevOptionsRbd)context.Options;
        RbdLibrary.EnsureLoaded();
        if (options.EncryptFormat != null)
            throw new BlockException(Errno.ENOTSUP, $"rbd: encrypted images ('{options.EncryptFormat}') are not supported by this driver");
        bool readOnly = context.Node.ReadOnly;
        if (options.Snapshot != null && !readOnly)
            throw new BlockException(Errno.EACCES, "rbd snapshots are read-only");
        string? key = Key(context.Graph, options.KeySecret);
        bool cache = !context.Node.CacheDirect;
        return await Task.Run(() =>
        {
            var connection = RbdConnection.Connect(options, key, cache);
            nint image = 0;
            try
            {
                int rc = readOnly
                    ? LibRbd.OpenReadOnly(connection.IoCtx, options.Image, out image, options.Snapshot)
                    : LibRbd.Open(connection.IoCtx, options.Image, out image, options.Snapshot);
                RbdErrors.Check($"error reading header from {options.Image}", rc);
                RbdErrors.Check("error getting image info", LibRbd.Stat(image, out var info, (nuint)System.Runtime.CompilerServices.Unsafe.SizeOf<LibRbd.ImageInfo>()));
                return (NodeDriver)new RbdNodeDriver(context.Node, connection, image, (long)info.Size, (long)info.ObjectSize, RbdFilename.Format(options));
            }
            catch
            {
                if (image != 0)
                    LibRbd.Close(image);
                connection.Dispose();
                throw;
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>
    /// As QEMU: <c>rbd_create</c> with the size and, from <c>cluster_size</c>, the object size (a power of two of at
    /// least 4 KiB); librbd's default features and object size otherwise. An existing image is EEXIST.
    /// </remarks>
    public override async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ulong size = request.Size ?? 0;
        if (size > (ulong)Graph.BlockNode.MaxLength)
            throw new BlockOptionsException("Image size must be less than 8 EiB!");
        int order = 0;
        if (request.GetSize("cluster_size") is { } objectSize)
        {
            if (!BitOperations.IsPow2(objectSize))
                throw new BlockOptionsException("obj size needs to be power of 2");
            if (objectSize < 4096)
                throw new BlockOptionsException("obj size too small");
            order = BitOperations.Log2(objectSize);
        }
        if (request.GetString("encrypt.format") is { } format)
            throw new BlockException(Errno.ENOTSUP, $"rbd: creating encrypted images ('{format}') is not supported by this driver");
        var options = RbdFilename.Parse(request.Filename);
        string? key = Key(request.Graph, request.GetString("password-secret"));
        RbdLibrary.EnsureLoaded();
        await Task.Run(() =>
        {
            using var connection = RbdConnection.Connect(options, key, cache: false);
            int o = order;
            RbdErrors.Check("error rbd create", LibRbd.ImageCreate(connection.IoCtx, options.Image, size, ref o));
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The user's key as librados takes it: the secret's bytes in base64, as QEMU passes them.</summary>
    private static string? Key(Graph.BlockGraph graph, string? secretId) =>
        secretId is null ? null : Convert.ToBase64String(graph.Secrets.Get(secretId).Span);
}
