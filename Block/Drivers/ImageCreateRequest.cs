using System.Globalization;
using Block.Graph;
using Block.Options;

namespace Block.Drivers;

/// <summary>
/// What <c>qemu-img create</c> asks of a driver: a file name, an optional size, and <c>-o</c> options as text, read
/// through the typed helpers here so that every driver reports bad values the same way.
/// </summary>
public sealed class ImageCreateRequest
{
    private readonly Dictionary<string, string> _options;
    private readonly HashSet<string> _consumed = new(StringComparer.Ordinal);

    /// <summary>Creates a request.</summary>
    public ImageCreateRequest(BlockGraph graph, string filename, IReadOnlyDictionary<string, string>? options = null)
    {
        Graph = graph;
        Filename = filename;
        _options = new Dictionary<string, string>(options ?? new Dictionary<string, string>(), StringComparer.Ordinal);
    }

    /// <summary>The graph, for opening the new file while the image is written.</summary>
    public BlockGraph Graph { get; }

    /// <summary>The image's file name.</summary>
    public string Filename { get; }

    /// <summary>All <c>-o</c> options, as given.</summary>
    public IReadOnlyDictionary<string, string> Options => _options;

    /// <summary>The <c>size</c> option (bytes), required by most drivers.</summary>
    public ulong? Size => GetSize("size");

    /// <summary>A copy of this request for another driver (a format delegating to its protocol), with the same options.</summary>
    public ImageCreateRequest ForDriver(string filename, IReadOnlyDictionary<string, string>? overrideOptions = null) =>
        new(Graph, filename, overrideOptions ?? _options);

    /// <summary>
    /// For format drivers: creates the image's file through its protocol (empty, keeping the protocol's own options such
    /// as <c>nocow</c>) and opens it for formatting: a backend that may write, resize, and write past the end.
    /// The caller disposes it.
    /// </summary>
    public async ValueTask<BlockBackend> CreateAndOpenFileAsync(CancellationToken cancellationToken = default)
    {
        var protocol = Graph.Drivers.ProtocolFor(Filename);
        if (!protocol.CanCreate)
            throw new BlockException(Errno.ENOTSUP, $"Protocol driver '{protocol.Name}' does not support image creation");
        var protocolOptions = new Dictionary<string, string>(StringComparer.Ordinal) { ["size"] = "0" };
        foreach (var d in protocol.CreateOptions)
        {
            if (d.Name is not ("size" or "preallocation") && _options.TryGetValue(d.Name, out var v))
            {
                protocolOptions[d.Name] = v;
                _consumed.Add(d.Name);
            }
        }
        await protocol.CreateAsync(ForDriver(Filename, protocolOptions), cancellationToken).ConfigureAwait(false);
        var node = await Graph.OpenNodeAsync(protocol.OptionsFromFilename(Filename), cancellationToken).ConfigureAwait(false);
        try
        {
            return Graph.CreateBackend(node, new BlockBackendOptions
            {
                Accounting = false,
                AllowWriteBeyondEof = true,
                Permissions = BlockPermissions.ConsistentRead | BlockPermissions.Write | BlockPermissions.Resize,
                SharedPermissions = BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged,
            });
        }
        catch
        {
            await Graph.ReleaseNodeAsync(node).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Reads a text option.</summary>
    public string? GetString(string name)
    {
        _consumed.Add(name);
        return _options.TryGetValue(name, out var v) ? v : null;
    }

    /// <summary>Reads an <c>on</c>/<c>off</c> option.</summary>
    public bool? GetBool(string name) => ParseBool(name, GetString(name));

    /// <summary>QemuOpts' booleans: on/off, yes/no, true/false, y/n.</summary>
    internal static bool? ParseBool(string name, string? v) => v switch
    {
        null => null,
        "on" or "yes" or "true" or "y" => true,
        "off" or "no" or "false" or "n" => false,
        _ => throw new BlockOptionsException($"Parameter '{name}' expects 'on' or 'off'"),
    };

    /// <summary>Reads a size option (<c>64k</c>).</summary>
    public ulong? GetSize(string name) => ParseSize(name, GetString(name));

    /// <summary>A size with optional suffix (<c>64k</c>).</summary>
    internal static ulong? ParseSize(string name, string? v)
    {
        if (v is null)
            return null;
        if (SizeParser.TryParse(v, out ulong bytes))
            return bytes;
        throw new BlockOptionsException($"Parameter '{name}' expects a non-negative number below 2^64\n" +
            "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.");
    }

    /// <summary>Reads an integer option.</summary>
    public long? GetNumber(string name) => ParseNumber(name, GetString(name));

    /// <summary>A decimal integer.</summary>
    internal static long? ParseNumber(string name, string? v)
    {
        if (v is null)
            return null;
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n))
            return n;
        throw new BlockOptionsException($"Parameter '{name}' expects a number");
    }

    /// <summary>Reads a QAPI enum option by wire name.</summary>
    public T? GetEnum<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.PublicFields)] T>(string name)
        where T : struct, Enum
    {
        string? v = GetString(name);
        if (v is null)
            return null;
        if (Qapi.QapiEnum<T>.TryParse(v, out T value))
            return value;
        throw new BlockOptionsException($"invalid parameter value: {v}");
    }

    /// <summary>Fails for the first option no reader asked for.</summary>
    public void Finish(string driverName)
    {
        foreach (var key in _options.Keys)
        {
            if (!_consumed.Contains(key))
                throw new BlockOptionsException($"Invalid parameter '{key}'");
        }
        _ = driverName;
    }
}
