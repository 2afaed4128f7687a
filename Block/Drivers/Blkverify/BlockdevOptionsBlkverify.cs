using Block.Options;

namespace Block.Drivers.Blkverify;

/// <summary>QAPI <c>BlockdevOptionsBlkverify</c>: an image under test checked against a raw copy of what it should hold.</summary>
public sealed record BlockdevOptionsBlkverify : BlockdevOptions
{
    /// <summary>Creates options for the <c>blkverify</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsBlkverify()
    {
        Driver = "blkverify";
        Test = BlockdevRef.ToNode(string.Empty);
        Raw = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The image under test: its guest data is what the node serves.</summary>
    public required BlockdevRef Test { get; init; }

    /// <summary>The raw image every read of <see cref="Test"/> is compared with, byte for byte.</summary>
    public required BlockdevRef Raw { get; init; }

    /// <summary>
    /// The test image's file name when the node came from <c>blkverify:RAW:TEST</c>: it is opened as a command-line
    /// image is, its format probed, and <see cref="Test"/> is then unused.
    /// </summary>
    public string? TestFilename { get; init; }
}
