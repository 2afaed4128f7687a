using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Graph;
using Block.Options;
using Block.Qapi;
using Block.Qcow2.Driver;
using Block.Qcow2.Format;

namespace Block.Qcow2;

/// <summary>The <c>qcow2</c> format driver: QEMU's copy-on-write image format, versions 2 and 3.</summary>
/// <remarks>Register it with <c>registry.AddQcow2()</c> (or <c>registry.Add(new Qcow2Driver())</c>).</remarks>
public sealed class Qcow2Driver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "qcow2";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    public override int Probe(ReadOnlySpan<byte> header, string? filename) =>
        header.Length >= 8 && BinaryPrimitives.ReadUInt32BigEndian(header) == Qcow2Header.Magic
        && BinaryPrimitives.ReadUInt32BigEndian(header[4..]) >= 2 ? 100 : 0;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override bool SupportsBacking => true;

    /// <inheritdoc />
    /// <remarks>In the order <c>qemu-img create</c> prints them on its "Formatting" line.</remarks>
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions { get; } =
    [
        new("encryption", CreateOptionType.Bool, "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)"),
        new("encrypt.format", CreateOptionType.String, "Encrypt the image, format choices: 'aes', 'luks'"),
        new("encrypt.key-secret", CreateOptionType.String, "ID of secret providing qcow AES key or LUKS passphrase"),
        new("encrypt.cipher-alg", CreateOptionType.String, "Name of encryption cipher algorithm"),
        new("encrypt.cipher-mode", CreateOptionType.String, "Name of encryption cipher mode"),
        new("encrypt.ivgen-alg", CreateOptionType.String, "Name of IV generator algorithm"),
        new("encrypt.ivgen-hash-alg", CreateOptionType.String, "Name of IV generator hash algorithm"),
        new("encrypt.hash-alg", CreateOptionType.String, "Name of encryption hash algorithm"),
        new("encrypt.iter-time", CreateOptionType.Number, "Time to spend in PBKDF in milliseconds"),
        new("cluster_size", CreateOptionType.Size, "qcow2 cluster size", "65536"),
        new("extended_l2", CreateOptionType.Bool, "Extended L2 tables", "off"),
        new("preallocation", CreateOptionType.String, "Preallocation mode (allowed values: off, metadata, falloc, full)"),
        new("compression_type", CreateOptionType.String, "Compression method used for image cluster compression", "zlib"),
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("compat", CreateOptionType.String, "Compatibility level (v2 [0.10] or v3 [1.1])"),
        new("backing_file", CreateOptionType.String, "File name of a base image"),
        new("backing_fmt", CreateOptionType.String, "Image format of the base image"),
        new("data_file", CreateOptionType.String, "File name of an external data file"),
        new("data_file_raw", CreateOptionType.Bool, "The external data file must stay valid as a raw image"),
        new("lazy_refcounts", CreateOptionType.Bool, "Postpone refcount updates", "off"),
        new("refcount_bits", CreateOptionType.Number, "Width of a reference count entry in bits", "16"),
    ];

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> AmendOptions { get; } =
    [
        new("encrypt.keyslot", CreateOptionType.Number, "Select a single keyslot to modify explicitly"),
        new("encrypt.state", CreateOptionType.String, "Select new state of affected keyslots (active/inactive)"),
        new("encrypt.old-secret", CreateOptionType.String, "Select all keyslots that match this password"),
        new("encrypt.new-secret", CreateOptionType.String, "New secret to set in the matching keyslots. Empty string to erase"),
        new("encrypt.iter-time", CreateOptionType.Number, "Time to spend in PBKDF in milliseconds"),
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("compat", CreateOptionType.String, "Compatibility level (v2 [0.10] or v3 [1.1])"),
        new("backing_file", CreateOptionType.String, "File name of a base image"),
        new("backing_fmt", CreateOptionType.String, "Image format of the base image"),
        new("data_file", CreateOptionType.String, "File name of an external data file"),
        new("data_file_raw", CreateOptionType.Bool, "The external data file must stay valid as a raw image"),
        new("lazy_refcounts", CreateOptionType.Bool, "Postpone refcount updates"),
        new("refcount_bits", CreateOptionType.Number, "Width of a reference count entry in bits"),
    ];

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        bool noBacking = IsNull(reader, "backing");
        BlockdevRef? backing = null;
        if (noBacking)
            reader.Skip("backing");
        else
            backing = reader.Ref("backing", parser);
        return new BlockdevOptionsQcow2
        {
            File = reader.RequiredRef("file", parser),
            Backing = backing,
            NoBacking = noBacking,
            DataFile = reader.Ref("data-file", parser),
            LazyRefcounts = reader.Bool("lazy-refcounts"),
            PassDiscardRequest = reader.Bool("pass-discard-request"),
            PassDiscardSnapshot = reader.Bool("pass-discard-snapshot"),
            PassDiscardOther = reader.Bool("pass-discard-other"),
            OverlapCheck = ReadOverlapCheck(reader),
            Encrypt = ReadEncrypt(reader),
            CacheSize = reader.Int("cache-size"),
            L2CacheSize = reader.Int("l2-cache-size"),
            L2CacheEntrySize = reader.Int("l2-cache-entry-size"),
            RefcountCacheSize = reader.Int("refcount-cache-size"),
            CacheCleanInterval = reader.Int("cache-clean-interval"),
        };
    }

    /// <summary>True for <c>"backing": null</c> in JSON, or an empty <c>backing=</c> in key=value form.</summary>
    private static bool IsNull(OptionsReader reader, string name)
    {
        if (!reader.Source.TryGetPropertyValue(name, out var node))
            return false;
        if (node is null)
            return true;
        return reader.Keyval && node is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Length == 0;
    }

    private static Qcow2OverlapChecks? ReadOverlapCheck(OptionsReader reader)
    {
        if (!reader.Has("overlap-check"))
            return null;
        var node = reader.Source["overlap-check"];
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            string? mode = reader.String("overlap-check");
            return new Qcow2OverlapChecks { Template = ParseMode(mode!, reader.FullName("overlap-check")) };
        }
        var obj = reader.Object("overlap-check")!;
        var template = obj.String("template") is { } t ? ParseMode(t, obj.FullName("template")) : (Qcow2OverlapCheckMode?)null;
        var overrides = new Dictionary<Qcow2OverlapFlags, bool>();
        foreach (var (name, flag) in Qcow2OverlapChecks.Names)
        {
            if (obj.Bool(name) is { } on)
                overrides[flag] = on;
        }
        obj.Finish();
        return new Qcow2OverlapChecks { Template = template, Overrides = overrides };
    }

    private static BlockdevQcow2Encryption? ReadEncrypt(OptionsReader reader)
    {
        if (reader.Object("encrypt") is not { } outer)
            return null;
        // QEMU names the members of the encryption options without the "encrypt." prefix ("Parameter 'x' is unexpected").
        var encrypt = new OptionsReader(outer.Source, reader.Keyval);
        var result = new BlockdevQcow2Encryption
        {
            Format = encrypt.String("format"),
            KeySecret = encrypt.String("key-secret"),
        };
        encrypt.Finish();
        return result;
    }

    private static Qcow2OverlapCheckMode ParseMode(string text, string name) => text switch
    {
        "none" => Qcow2OverlapCheckMode.None,
        "constant" => Qcow2OverlapCheckMode.Constant,
        "cached" => Qcow2OverlapCheckMode.Cached,
        "all" => Qcow2OverlapCheckMode.All,
        _ => throw new BlockOptionsException($"Parameter '{name}' does not accept value '{text}'"),
    };

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken) =>
        await Qcow2NodeDriver.OpenAsync(context, (BlockdevOptionsQcow2)context.Options, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken) =>
        Qcow2Creator.CreateAsync(request, cancellationToken);

    /// <inheritdoc />
    public override bool CanMeasure => true;

    /// <inheritdoc />
    public override ValueTask<BlockMeasureInfo> MeasureAsync(ImageCreateRequest options, BlockNode? input, CancellationToken cancellationToken) =>
        Qcow2Measure.MeasureAsync(options, input, cancellationToken);
}

/// <summary>Registration of the qcow2 driver.</summary>
public static class Qcow2DriverRegistryExtensions
{
    /// <summary>Adds the <c>qcow2</c> format driver.</summary>
    public static DriverRegistry AddQcow2(this DriverRegistry registry)
    {
        registry.Add(new Qcow2Driver());
        return registry;
    }
}
