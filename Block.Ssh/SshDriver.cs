using Block.Drivers;
using Block.Options;
using Block.Ssh.Driver;
using Block.Ssh.Options;
using Block.Ssh.Sftp;

namespace Block.Ssh;

/// <summary>
/// The <c>ssh</c> protocol driver: an image on an SSH server, read and written over SFTP, from QAPI
/// <c>BlockdevOptionsSsh</c> (QEMU 7.2's, with <c>host-key-check</c>) or an <c>ssh://</c> file name.
/// </summary>
public sealed class SshDriver(SshDriverOptions? options = null) : BlockDriver
{
    private readonly SshDriverOptions _options = options ?? new SshDriverOptions();

    /// <inheritdoc />
    public override string Name => "ssh";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes { get; } = ["ssh"];

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    /// <remarks>QEMU's ssh driver takes only the size; <c>preallocation</c> is "Invalid parameter".</remarks>
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
    ];

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename) => SshFilename.Parse(filename);

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string? filename = reader.String("filename");
        var serverReader = reader.Object("server");
        string? legacyHost = reader.String("host");
        string? legacyPort = reader.String("port");
        string? path = reader.String("path");
        string? user = reader.String("user");
        string? legacyCheck = reader.String("host_key_check");
        var checkReader = reader.Object("host-key-check");
        string? identityFile = reader.String("identity-file");

        if (filename != null)
        {
            if (serverReader != null || legacyHost != null || legacyPort != null || path != null || user != null || legacyCheck != null || checkReader != null)
                throw new BlockOptionsException("user, host, port, path and host_key_check cannot be used at the same time as a file option");
            var parsed = SshFilename.Parse(filename);
            return identityFile is null ? parsed : parsed with { IdentityFile = identityFile };
        }

        SshServerAddress server;
        if (serverReader != null)
        {
            if (legacyHost != null || legacyPort != null)
                throw new BlockOptionsException("Cannot use 'server' and host/port at the same time");
            server = ReadServer(serverReader);
        }
        else if (legacyHost != null)
        {
            server = new SshServerAddress(legacyHost, legacyPort ?? "22");
        }
        else
        {
            throw reader.Missing("server.host");
        }
        if (path is null)
            throw reader.Missing("path");

        SshHostKeyCheck? check = null;
        if (checkReader != null)
        {
            if (legacyCheck != null)
                throw new BlockOptionsException("host_key_check and host-key-check cannot be used at the same time");
            check = ReadHostKeyCheck(checkReader);
        }
        else if (legacyCheck != null)
        {
            check = SshHostKeyCheck.ParseLegacy(legacyCheck);
        }
        return new BlockdevOptionsSsh
        {
            Server = server,
            Path = path,
            User = user,
            HostKeyCheck = check,
            LegacyHostKeyCheck = legacyCheck,
            IdentityFile = identityFile,
        };
    }

    /// <summary>Reads a flat QAPI <c>InetSocketAddress</c>.</summary>
    private static SshServerAddress ReadServer(OptionsReader reader)
    {
        var address = new SshServerAddress(reader.RequiredString("host"), reader.RequiredString("port"));
        reader.Bool("numeric");
        reader.Int("to");
        reader.Bool("ipv4");
        reader.Bool("ipv6");
        reader.Bool("keep-alive");
        reader.Bool("mptcp");
        reader.Finish();
        return address;
    }

    /// <summary>Reads QAPI <c>SshHostKeyCheck</c>: <c>mode</c>, and for <c>hash</c> its <c>type</c> and <c>hash</c>.</summary>
    private static SshHostKeyCheck ReadHostKeyCheck(OptionsReader reader)
    {
        string mode = reader.RequiredString("mode");
        SshHostKeyCheck check;
        switch (mode)
        {
            case "none":
                check = SshHostKeyCheck.None;
                break;
            case "known_hosts":
                check = SshHostKeyCheck.KnownHosts;
                break;
            case "hash":
                string type = reader.RequiredString("type");
                var hashType = type switch
                {
                    "md5" => SshHostKeyHashType.Md5,
                    "sha1" => SshHostKeyHashType.Sha1,
                    "sha256" => SshHostKeyHashType.Sha256,
                    _ => throw new BlockOptionsException($"Parameter '{reader.FullName("type")}' does not accept value '{type}'"),
                };
                check = new SshHostKeyCheck(SshHostKeyCheckMode.Hash, hashType, reader.RequiredString("hash"));
                break;
            default:
                throw new BlockOptionsException($"Parameter '{reader.FullName("mode")}' does not accept value '{mode}'");
        }
        reader.Finish();
        return check;
    }

    /// <inheritdoc />
    /// <remarks>As QEMU: the file is opened for reading, and also for writing unless the node is read-only.</remarks>
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = (BlockdevOptionsSsh)context.Options;
        var connection = await SshConnection.ConnectAsync(options, _options, cancellationToken).ConfigureAwait(false);
        try
        {
            var flags = context.Node.ReadOnly ? SftpOpenFlags.Read : SftpOpenFlags.Read | SftpOpenFlags.Write;
            byte[] handle = await connection.Channel.OpenAsync(options.Path, flags, permissions: null).ConfigureAwait(false);
            long length = await connection.Channel.SizeAsync(handle).ConfigureAwait(false);
            return new SshNodeDriver(context.Node, connection, handle, length, SshFilename.Format(options, connection.User), options.Server.Host);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>As QEMU: the file is created or truncated (<c>O_CREAT|O_TRUNC</c>, mode 0644), then grown to the size by one zero byte at its end.</remarks>
    public override async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ulong size = request.Size ?? 0;
        if (size > (ulong)Graph.BlockNode.MaxLength)
            throw new BlockOptionsException("Image size must be less than 8 EiB!");
        var options = SshFilename.Parse(request.Filename);
        using var connection = await SshConnection.ConnectAsync(options, _options, cancellationToken).ConfigureAwait(false);
        var channel = connection.Channel;
        byte[] handle = await channel.OpenAsync(options.Path, SftpOpenFlags.Write | SftpOpenFlags.Create | SftpOpenFlags.Truncate, permissions: Convert.ToUInt32("644", 8)).ConfigureAwait(false);
        try
        {
            if (size > 0)
                await SshNodeDriver.GrowFileAsync(channel, handle, (long)size).ConfigureAwait(false);
        }
        finally
        {
            await channel.CloseAsync(handle).ConfigureAwait(false);
        }
    }
}
