using Block.Graph;
using Block.Options;

namespace Block.Drivers.Blkverify;

/// <summary>
/// <c>blkverify</c>: serves an image under test (<c>test</c>) and checks every read against a raw copy of what it
/// should hold (<c>raw</c>); writes go to both. QEMU's way of testing a format driver against a plain file. Takes
/// QEMU's file name syntax <c>blkverify:RAW:TEST</c>, where RAW is a file read as bytes and TEST an image whose
/// format is probed; a format (raw) is probed over the node itself, as QEMU does.
/// </summary>
/// <remarks>
/// A protocol in the registry's sense only so that <c>blkverify:</c> file names reach it; its content is its test
/// child's. Reads of the two children run at once, so a read costs the slower of the two, not their sum.
/// </remarks>
public sealed class BlkverifyDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "blkverify";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes => ["blkverify"];

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename)
    {
        string rest = filename.StartsWith("blkverify:", StringComparison.Ordinal) ? filename["blkverify:".Length..] : filename;
        int colon = rest.IndexOf(':');
        if (colon < 0)
            throw new BlockOptionsException("blkverify requires raw copy and original image path");
        return new BlockdevOptionsBlkverify
        {
            Raw = new Drivers.File.BlockdevOptionsFile { Driver = "file", Filename = rest[..colon] },
            TestFilename = rest[(colon + 1)..],
        };
    }

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        // A file name (blkverify:RAW:TEST) stands for both children, as in QEMU.
        if (reader.String("filename") is { } filename)
            return OptionsFromFilename(filename);
        return new BlockdevOptionsBlkverify
        {
            Test = reader.Ref("test", parser) ?? throw MissingChild("test"),
            Raw = reader.Ref("raw", parser) ?? throw MissingChild("raw"),
        };
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var o = (BlockdevOptionsBlkverify)context.Options;
        var test = o.TestFilename is { } name
            ? await context.OpenChildImageAsync("test", name, ChildRole.Filtered | ChildRole.Primary, cancellationToken).ConfigureAwait(false)
            : await context.OpenChildAsync("test", o.Test, ChildRole.Filtered | ChildRole.Primary, cancellationToken).ConfigureAwait(false);
        var raw = await context.OpenChildAsync("raw", o.Raw, ChildRole.Data, cancellationToken).ConfigureAwait(false);
        return new BlkverifyNodeDriver(context.Node, test.Node, raw.Node);
    }

    private static BlockOptionsException MissingChild(string name) => new($"A block device must be specified for \"{name}\"");
}
