using Block.Drivers;
using Block.Options;

namespace Block.Nbd.Client;

/// <summary>
/// The <c>nbd</c> protocol driver: a node whose storage is an export of an NBD server, reached over a unix or TCP
/// socket (optionally TLS), from QAPI <c>BlockdevOptionsNbd</c> or QEMU's file names (<see cref="NbdFilename"/>).
/// </summary>
public sealed class NbdDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "nbd";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes { get; } = ["nbd", "nbd+tcp", "nbd+unix"];

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename)
    {
        var (server, export) = NbdFilename.Parse(filename);
        return new BlockdevOptionsNbd { Server = server, Export = export };
    }

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string? filename = reader.String("filename");
        string? legacyHost = reader.String("host");
        string? legacyPort = reader.String("port");
        string? legacyPath = reader.String("path");
        string? export = reader.String("export");
        var serverReader = reader.Object("server");
        string? tlsCreds = reader.String("tls-creds");
        string? tlsHostname = reader.String("tls-hostname");

        NbdServerAddress? server = null;
        if (filename != null)
        {
            // QEMU parses the name only when nothing else names the server or the export.
            if (legacyHost != null || legacyPort != null || legacyPath != null || export != null || serverReader != null)
                throw new BlockOptionsException(NbdFilename.AddressMissing);
            (server, export) = NbdFilename.Parse(filename);
        }
        else if (serverReader != null)
        {
            if (legacyHost != null || legacyPort != null || legacyPath != null)
                throw new BlockOptionsException("Cannot use 'server' and path/host/port at the same time");
            server = ReadAddress(serverReader);
        }
        else if (legacyPath != null)
        {
            if (legacyHost != null)
                throw new BlockOptionsException("path and host may not be used at the same time");
            if (legacyPort != null)
                throw new BlockOptionsException("port may not be used without host");
            server = NbdServerAddress.Unix(legacyPath);
        }
        else if (legacyHost != null)
        {
            server = NbdServerAddress.Inet(legacyHost, legacyPort);
        }
        if (server is null)
            throw new BlockOptionsException(NbdFilename.AddressMissing);
        return new BlockdevOptionsNbd { Server = server, Export = export, TlsCreds = tlsCreds, TlsHostname = tlsHostname };
    }

    /// <summary>Reads a flat QAPI <c>SocketAddress</c> of type <c>unix</c> or <c>inet</c>.</summary>
    private static NbdServerAddress ReadAddress(OptionsReader reader)
    {
        string type = reader.RequiredString("type");
        NbdServerAddress address;
        switch (type)
        {
            case "unix":
                address = NbdServerAddress.Unix(reader.RequiredString("path"));
                reader.Skip("abstract");
                reader.Skip("tight");
                break;
            case "inet":
                address = NbdServerAddress.Inet(reader.RequiredString("host"), reader.RequiredString("port"));
                reader.Bool("numeric");
                reader.Bool("ipv4");
                reader.Bool("ipv6");
                reader.Bool("keep-alive");
                break;
            default:
                throw new BlockOptionsException($"Parameter '{reader.FullName("type")}' does not accept value '{type}'");
        }
        reader.Finish();
        return address;
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = (BlockdevOptionsNbd)context.Options;
        var clientOptions = new NbdClientOptions
        {
            Export = options.Export ?? string.Empty,
            Tls = NbdTls.ClientOptions(context.Graph, options),
        };
        var client = await NbdClient.ConnectAsync(options.Server, clientOptions, cancellationToken).ConfigureAwait(false);
        if (client.Export.Has(Protocol.NbdProtocol.TxReadOnly) && !context.Node.ReadOnly)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw new BlockException(Errno.EACCES, "Could not open image: Permission denied");
        }
        return new NbdNodeDriver(context.Node, client, NbdFilename.Format(options.Server, options.Export));
    }
}
