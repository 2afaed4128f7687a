using Block.Crypto.Luks;
using Block.Drivers;
using Block.Graph;
using Block.Options;
using Block.Qapi;

namespace Block.Crypto.Driver;

/// <summary>
/// The <c>luks</c> format (LUKS1, as QEMU's <c>block/crypto.c</c> offers it): a LUKS header and key slots at the
/// start of the file, the encrypted payload after them, guest sector <c>n</c> encrypted with IV sector <c>n</c>.
/// </summary>
/// <remarks>
/// Opening needs <c>key-secret</c> (the id of a secret holding a slot's passphrase) unless the node is opened for
/// metadata only (<see cref="BlockdevOptions.NoIo"/>, as <c>qemu-img info</c> does). Creation takes qemu-img 7.2's
/// options (<see cref="LuksCreateOptions.Descriptors"/>) and checks them and the secret before the file is made.
/// </remarks>
public sealed class LuksDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "luks";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    public override int Probe(ReadOnlySpan<byte> header, string? filename) => LuksHeader.HasMagic(header) ? 100 : 0;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
        .. LuksCreateOptions.Descriptors(),
    ];

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) => new BlockdevOptionsLuks
    {
        File = reader.RequiredRef("file", parser),
        KeySecret = reader.String("key-secret"),
    };

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsLuks)context.Options;
        ReadOnlyMemory<byte>? passphrase = null;
        if (!options.NoIo)
        {
            string secretId = options.KeySecret ?? throw new BlockOptionsException("Parameter 'key-secret' is required for cipher");
            passphrase = context.Graph.Secrets.Get(secretId);
        }
        var file = await context.OpenChildAsync("file", options.File, ChildRole.Primary, cancellationToken).ConfigureAwait(false);
        var volume = await LuksVolume.OpenAsync(new BlockNodeLuksStorage(file.Node), passphrase, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (volume.PayloadOffset > file.Node.Length)
        {
            volume.Dispose();
            throw new ImageFormatException($"LUKS payload offset {volume.PayloadOffset} is past the end of the file ({file.Node.Length} bytes)");
        }
        return new LuksNodeDriver(context.Node, file.Node, volume);
    }

    /// <inheritdoc />
    public override bool CanMeasure => true;

    /// <inheritdoc />
    /// <remarks>The header and key material, then the disk: its size is not rounded to sectors, as in QEMU.</remarks>
    public override ValueTask<BlockMeasureInfo> MeasureAsync(ImageCreateRequest options, BlockNode? input, CancellationToken cancellationToken)
    {
        long header = LuksCreateOptions.MeasureHeaderBytes(options);
        long size = input?.Length ?? unchecked((long)(options.Size ?? 0));
        long total = unchecked(header + size);
        return new(new BlockMeasureInfo { Required = total, FullyAllocated = total });
    }

    /// <inheritdoc />
    public override async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ulong size = request.Size ?? 0;
        string? secretId = request.GetString("key-secret");
        var options = LuksCreateOptions.FromRequest(request);
        var prealloc = request.GetEnum<PreallocMode>("preallocation") ?? PreallocMode.Off;
        if (secretId is null)
            throw new BlockOptionsException("Parameter 'key-secret' is required for cipher");
        var passphrase = request.Graph.Secrets.Get(secretId);
        options.Suite.Validate();
        Hashing.CryptoHash.EnsureSupported(options.Hash);
        uint payloadSectors = LuksLayout.PayloadOffsetSectors(options.Suite.KeyLength);
        if (size > (ulong)(BlockNode.MaxLength - payloadSectors * 512L))
            throw new BlockOptionsException("Image size must be less than 8 EiB!");

        await using var backend = await request.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        using var volume = await LuksVolume.CreateAsync(new BlockNodeLuksStorage(backend.Root!), options, passphrase, cancellationToken).ConfigureAwait(false);
        await backend.TruncateAsync(volume.PayloadOffset + (long)size, prealloc, exact: true).ConfigureAwait(false);
        await backend.FlushAsync().ConfigureAwait(false);
    }
}
