using Block.Options;

namespace Block.Drivers.Archipelago;

/// <summary>QAPI <c>BlockdevOptionsArchipelago</c> (the seed's 2.2–2.9 schema): a GRNET Archipelago volume.</summary>
public sealed record BlockdevOptionsArchipelago : BlockdevOptions
{
    /// <summary>Creates options for the <c>archipelago</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsArchipelago()
    {
        Driver = ArchipelagoDriver.DriverName;
        Volume = string.Empty;
    }

    /// <summary>Name of the Archipelago volume image.</summary>
    public required string Volume { get; init; }

    /// <summary>The port mapperd listens on (Archipelago's default 1001).</summary>
    public long? Mport { get; init; }

    /// <summary>The port vlmcd listens on (Archipelago's default 501).</summary>
    public long? Vport { get; init; }

    /// <summary>The name of the shared memory segment the Archipelago stack uses (default <c>archipelago</c>).</summary>
    public string? Segment { get; init; }
}
