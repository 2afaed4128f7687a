using Block.Drivers;
using Block.Options;

namespace Block.Fuzz.Memory;

/// <summary>
/// <c>fuzz-memory</c>: a protocol node over a byte array, so that a fuzz target opens an image without touching the
/// disk. Reads past the end return zeroes and writes grow it, as a file does, up to <see cref="MaxLength"/>.
/// </summary>
public sealed class MemoryDriver : BlockDriver
{
    /// <summary>The driver's name.</summary>
    public const string DriverName = "fuzz-memory";

    /// <summary>Largest size a node may grow to: an image that makes its driver allocate more is refused (ENOSPC), not obeyed.</summary>
    public const long MaxLength = 64L << 20;

    /// <inheritdoc />
    public override string Name => DriverName;

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
        throw new BlockOptionsException($"The '{DriverName}' driver can only be configured in code");

    /// <inheritdoc />
    public override ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken) =>
        new(new MemoryNodeDriver(context.Node, ((BlockdevOptionsMemory)context.Options).Data));
}
