using Block.Drivers.Blkdebug;
using Block.Drivers.File;
using Block.Drivers.Null;
using Block.Drivers.Raw;

namespace Block.Drivers;

/// <summary>
/// The drivers a graph can use, by QAPI name. Format packages add theirs (<c>registry.AddQcow2()</c>).
/// </summary>
public sealed class DriverRegistry
{
    private readonly Dictionary<string, BlockDriver> _drivers = new(StringComparer.Ordinal);

    /// <summary>A registry with the core drivers: file, host_device, host_cdrom, null-co, null-aio, raw, blkdebug, blkverify, quorum, replication, vvfat and archipelago (which parses and refuses to open).</summary>
    public static DriverRegistry CreateDefault()
    {
        var registry = new DriverRegistry();
        registry.Add(new FileDriver("file"));
        registry.Add(new FileDriver("host_device"));
        registry.Add(new FileDriver("host_cdrom"));
        registry.Add(new NullDriver("null-co"));
        registry.Add(new NullDriver("null-aio"));
        registry.Add(new RawDriver());
        registry.Add(new BlkdebugDriver());
        registry.Add(new Blkverify.BlkverifyDriver());
        registry.Add(new Quorum.QuorumDriver());
        registry.Add(new Replication.ReplicationDriver());
        registry.Add(new Vvfat.VvfatDriver());
        registry.Add(new Archipelago.ArchipelagoDriver());
        return registry;
    }

    /// <summary>Every registered driver.</summary>
    public IEnumerable<BlockDriver> All => _drivers.Values;

    /// <summary>Registers <paramref name="driver"/>, replacing one of the same name.</summary>
    public DriverRegistry Add(BlockDriver driver)
    {
        _drivers[driver.Name] = driver;
        return this;
    }

    /// <summary>The driver named <paramref name="name"/>, or null.</summary>
    public BlockDriver? Find(string name) => _drivers.GetValueOrDefault(name);

    /// <summary>The driver named <paramref name="name"/>.</summary>
    /// <exception cref="BlockOptionsException">No such driver.</exception>
    public BlockDriver Get(string name) =>
        Find(name) ?? throw new BlockOptionsException($"Unknown driver '{name}'");

    /// <summary>
    /// The protocol driver for a file name: the one whose prefix the name starts with (<c>nbd:</c>,
    /// <c>http://</c>), else <c>file</c>.
    /// </summary>
    public BlockDriver ProtocolFor(string filename)
    {
        int colon = filename.IndexOf(':');
        if (colon > 0 && filename.IndexOf('/') is var slash && (slash < 0 || slash > colon))
        {
            string prefix = filename[..colon];
            foreach (var d in _drivers.Values)
            {
                if (d.ProtocolPrefixes.Contains(prefix))
                    return d;
            }
        }
        return Get("file");
    }

    /// <summary>
    /// The format whose probe scores highest for <paramref name="header"/>; raw when nothing else claims it.
    /// </summary>
    public BlockDriver ProbeFormat(ReadOnlySpan<byte> header, string? filename)
    {
        BlockDriver? best = null;
        int bestScore = 0;
        foreach (var d in _drivers.Values)
        {
            if (d.Kind != BlockDriverKind.Format)
                continue;
            int score = d.Probe(header, filename);
            if (score > bestScore)
            {
                best = d;
                bestScore = score;
            }
        }
        return best ?? Get("raw");
    }
}
