using Block.Options;

namespace Block.Fuzz.Memory;

/// <summary>Options of a <see cref="MemoryDriver"/> node: the bytes it starts with. Only built in code.</summary>
public sealed record BlockdevOptionsMemory : BlockdevOptions
{
    /// <summary>Creates options for the <c>fuzz-memory</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsMemory()
    {
        Driver = MemoryDriver.DriverName;
    }

    /// <summary>The initial content (copied: writes never change the caller's array).</summary>
    public byte[] Data { get; init; } = [];
}
