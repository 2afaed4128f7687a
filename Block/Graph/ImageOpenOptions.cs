using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Graph;

/// <summary>
/// How to open an image by file name, the way qemu-img and qemu-io do: a format over a protocol node, optionally
/// probed, with a backend on top.
/// </summary>
public sealed record ImageOpenOptions
{
    /// <summary>The format driver; null to probe (only with <see cref="AllowProbing"/>).</summary>
    public string? Format { get; init; }

    /// <summary>Probe the format when <see cref="Format"/> is null. Off by default: probing untrusted images is unsafe.</summary>
    public bool AllowProbing { get; init; }

    /// <summary>Open read-only.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Share all permissions (qemu-img's <c>-U</c>); read-only only.</summary>
    public bool ForceShare { get; init; }

    /// <summary>Bypass the page cache (O_DIRECT).</summary>
    public bool CacheDirect { get; init; }

    /// <summary>Ignore flushes.</summary>
    public bool NoFlush { get; init; }

    /// <summary>Pass discard requests down.</summary>
    public BlockdevDiscardOptions Discard { get; init; } = BlockdevDiscardOptions.Ignore;

    /// <summary>Zero detection.</summary>
    public BlockdevDetectZeroesOptions DetectZeroes { get; init; } = BlockdevDetectZeroesOptions.Off;

    /// <summary>
    /// Metadata only (QEMU's <c>BDRV_O_NO_IO</c>, as <c>qemu-img info</c> opens): the format node is opened with
    /// <see cref="Options.BlockdevOptions.NoIo"/>, so encrypted images open without their key. Sending requests to
    /// such a node is the caller's error.
    /// </summary>
    public bool NoIo { get; init; }

    /// <summary>
    /// The key may come later (QEMU 2.8's <c>-drive</c>): the format node is opened with
    /// <see cref="Options.BlockdevOptions.KeyLater"/>, so a legacy AES qcow2 image without its secret opens
    /// unusable until <see cref="BlockGraph.SetPasswordAsync"/>.
    /// </summary>
    public bool KeyLater { get; init; }

    /// <summary>
    /// Opened to be checked (QEMU's <c>BDRV_O_CHECK</c>, as <c>qemu-img check</c> opens): the format node is opened with
    /// <see cref="Options.BlockdevOptions.ForCheck"/>, so a repair sees the image as it is.
    /// </summary>
    public bool ForCheck { get; init; }

    /// <summary>I/O engine of the protocol node.</summary>
    public BlockdevAioOptions? Aio { get; init; }

    /// <summary>
    /// Open the image without its backing file (QEMU's <c>BDRV_O_NO_BACKING</c>, as <c>qemu-img info</c> does): the
    /// image's own metadata is all that is read. Formats without backing files ignore it.
    /// </summary>
    public bool NoBacking { get; init; }

    /// <summary>More options for the format node, in the dotted tree form (<c>{"file": {"locking": "off"}}</c>), as keyval strings.</summary>
    public JsonObject? ExtraOptions { get; init; }

    /// <summary>The backend's options; its permissions default to what <see cref="ReadOnly"/> implies.</summary>
    public BlockBackendOptions Backend { get; init; } = new();
}
