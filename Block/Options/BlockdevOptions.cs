using Block.Qapi;

namespace Block.Options;

/// <summary>
/// QAPI <c>BlockdevOptions</c>: the options of one node, a union keyed by <see cref="Driver"/>. Each driver has a
/// derived record with its own members; the members here are common to all.
/// </summary>
/// <remarks>
/// Options come from QMP JSON, from QEMU's dotted <c>key=value</c> strings, from <c>json:{…}</c> file names, or from
/// code (<c>new BlockdevOptionsRaw { File = new BlockdevOptionsFile { Filename = "disk.img" } }</c>). The parsers in
/// <see cref="BlockdevOptionsParser"/> produce these records and name any unknown or ill-typed option.
/// </remarks>
public abstract record BlockdevOptions
{
    /// <summary>The driver's QAPI name (<c>file</c>, <c>raw</c>, <c>qcow2</c>…).</summary>
    public required string Driver { get; init; }

    /// <summary>The node's name; generated (<c>#blockNNN</c>) when absent.</summary>
    public string? NodeName { get; init; }

    /// <summary>Whether discard requests are passed down (<c>ignore</c> by default).</summary>
    public BlockdevDiscardOptions? Discard { get; init; }

    /// <summary>Cache mode.</summary>
    public BlockdevCacheOptions? Cache { get; init; }

    /// <summary>Open read-only.</summary>
    public bool? ReadOnly { get; init; }

    /// <summary>Zero detection on writes.</summary>
    public BlockdevDetectZeroesOptions? DetectZeroes { get; init; }

    /// <summary>Share every permission with other users (QEMU 2.10 <c>force-share</c>, qemu-img's <c>-U</c>); read-only only.</summary>
    public bool? ForceShare { get; init; }

    /// <summary>
    /// Not a QAPI member (never read from options): QEMU's <c>BDRV_O_NO_IO</c> open flag. The caller only inspects
    /// the image's metadata (<c>qemu-img info</c>) and sends no requests, so an encrypted format opens without
    /// unlocking its key, as QEMU's tools do.
    /// </summary>
    public bool NoIo { get; init; }

    /// <summary>
    /// Not a QAPI member (never read from options): the key may come later, as with QEMU 2.8's <c>-drive</c>. An
    /// encrypted format whose key is not given (legacy qcow2 AES without <c>encrypt.key-secret</c>) opens with
    /// <see cref="Drivers.NodeDriver.IsKeyMissing"/> set, unusable until <see cref="Graph.BlockGraph.SetPasswordAsync"/>
    /// (QMP <c>block_passwd</c>) gives the password.
    /// </summary>
    public bool KeyLater { get; init; }

    /// <summary>
    /// Not a QAPI member (never read from options): QEMU's <c>BDRV_O_CHECK</c> open flag. The image is opened to be
    /// checked (<c>qemu-img check</c>): a format opens it as it is, so that a read-write open for a repair is allowed on
    /// an image marked corrupt and does not repair a dirty image by itself first. Such a node is for the check only:
    /// a format may skip what it does before guest writes (qcow2 keeps the autoclear bits of bitmaps it does not
    /// maintain, since a repair writes no guest data).
    /// </summary>
    public bool ForCheck { get; init; }

    /// <summary>The child references this node's options name, by QAPI child name (<c>file</c>, <c>backing</c>…).</summary>
    public virtual IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences => [];
}

/// <summary>QAPI <c>BlockdevCacheOptions</c>.</summary>
public sealed record BlockdevCacheOptions
{
    /// <summary>Bypass the host page cache (O_DIRECT).</summary>
    public bool? Direct { get; init; }

    /// <summary>Ignore flush requests.</summary>
    public bool? NoFlush { get; init; }
}

/// <summary>
/// QAPI alternate <c>BlockdevRef</c>: either the options of a new node, or the name of an existing one.
/// </summary>
public sealed record BlockdevRef
{
    private BlockdevRef(BlockdevOptions? options, string? reference)
    {
        Options = options;
        Reference = reference;
    }

    /// <summary>Options of a node to open, or null for a reference.</summary>
    public BlockdevOptions? Options { get; }

    /// <summary>Name of an existing node, or null for new options.</summary>
    public string? Reference { get; }

    /// <summary>A reference to new options.</summary>
    public static implicit operator BlockdevRef(BlockdevOptions options) => new(options, null);

    /// <summary>A reference to an existing node by name.</summary>
    public static BlockdevRef ToNode(string nodeName) => new(null, nodeName);
}
