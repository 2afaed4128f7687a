using Block.Options;

namespace Block.Drivers.Archipelago;

/// <summary>
/// <c>archipelago</c>: the seed schema's driver for GRNET Archipelago volumes. Its options and its
/// <c>archipelago:VOLUME[/mport=N[:vport=N][:segment=S]]</c> file names parse as the seed defines them, so a
/// configuration written for QEMU 2.2–2.9 is read and checked; opening always fails with an error that says why.
/// </summary>
/// <remarks>
/// QEMU reached Archipelago through libxseg's shared-memory segments. Archipelago and libxseg were abandoned upstream,
/// no distribution ships them, and QEMU removed the driver in 2.11; there is no library left to bind to and no server
/// to talk to, so a clear refusal is the whole honest implementation.
/// </remarks>
public sealed class ArchipelagoDriver : BlockDriver
{
    /// <summary>The driver's name in <c>BlockdevDriver</c>.</summary>
    public const string DriverName = "archipelago";

    private const string Prefix = "archipelago:";

    /// <inheritdoc />
    public override string Name => DriverName;

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes => [DriverName];

    /// <inheritdoc />
    /// <remarks>The seed's syntax: the volume name up to the first '/', then ':'-separated <c>mport=</c>,
    /// <c>vport=</c> and <c>segment=</c>.</remarks>
    public override BlockdevOptions OptionsFromFilename(string filename)
    {
        if (!filename.StartsWith(Prefix, StringComparison.Ordinal))
            throw new BlockOptionsException($"archipelago: file name '{filename}' does not start with '{Prefix}'");
        string rest = filename[Prefix.Length..];
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        string volume = slash < 0 ? rest : rest[..slash];
        if (volume.Length == 0)
            throw new BlockOptionsException($"archipelago: file name '{filename}' names no volume");
        long? mport = null, vport = null;
        string? segment = null;
        if (slash >= 0)
        {
            foreach (string option in rest[(slash + 1)..].Split(':'))
            {
                int equals = option.IndexOf('=', StringComparison.Ordinal);
                string key = equals < 0 ? option : option[..equals];
                string value = equals < 0 ? "" : option[(equals + 1)..];
                switch (key)
                {
                    case "mport": mport = ParsePort(filename, key, value); break;
                    case "vport": vport = ParsePort(filename, key, value); break;
                    case "segment" when value.Length > 0: segment = value; break;
                    default:
                        throw new BlockOptionsException(
                            $"archipelago: unknown option '{option}' in file name '{filename}' (expected mport=N, vport=N or segment=NAME)");
                }
            }
        }
        return new BlockdevOptionsArchipelago { Volume = volume, Mport = mport, Vport = vport, Segment = segment };
    }

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        string? filename = reader.String("filename");
        if (filename != null)
            return OptionsFromFilename(filename);
        return new BlockdevOptionsArchipelago
        {
            Volume = reader.RequiredString("volume"),
            Mport = reader.Int("mport"),
            Vport = reader.Int("vport"),
            Segment = reader.String("segment"),
        };
    }

    /// <inheritdoc />
    /// <exception cref="BlockException">Always: <see cref="Errno.ENOTSUP"/>, naming the volume and why.</exception>
    public override ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsArchipelago)context.Options;
        throw new BlockException(Errno.ENOTSUP,
            $"archipelago: cannot open volume '{options.Volume}': the Archipelago storage system and its libxseg library " +
            "no longer exist anywhere (QEMU dropped this driver in 2.11); its options are accepted only so that old configurations parse");
    }

    private static long ParsePort(string filename, string key, string value)
    {
        if (!long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long port) || port > 65535)
            throw new BlockOptionsException($"archipelago: '{key}' in file name '{filename}' must be a port number, not '{value}'");
        return port;
    }
}
