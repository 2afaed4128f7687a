using System.Buffers.Binary;
using System.Numerics;
using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2.Driver;
using Block.Qcow2.Encryption;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2;

/// <summary>
/// <c>qemu-img create -f qcow2</c>: validates the options with QEMU's messages, writes the header, refcount table and
/// first refcount block, then opens the image and grows it to its size through the driver's own resize path (which
/// places the L1 table), so a default image is byte-identical to QEMU's. Encryption comes last, as in QEMU: a LUKS
/// header (created in memory before anything else, so that a failure leaves no file) goes into the clusters after
/// those, and the header names the method.
/// </summary>
internal static class Qcow2Creator
{
    /// <summary>The creation parameters after validation.</summary>
    private sealed record Plan(ulong Size, int Version, int ClusterBits, int RefcountOrder, bool Lazy, bool ExtendedL2,
        byte CompressionType, PreallocMode Preallocation, string? BackingFile, string? BackingFormat, string? DataFile, bool DataFileRaw,
        Qcow2EncryptionPlan? Encryption);

    public static async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        var plan = Validate(request);
        var graph = request.Graph;
        var luksArea = plan.Encryption is { } encryption
            ? await encryption.CreateLuksAreaAsync(cancellationToken).ConfigureAwait(false)
            : ReadOnlyMemory<byte>.Empty;

        if (plan.DataFile != null)
        {
            var protocol = graph.Drivers.ProtocolFor(plan.DataFile);
            await protocol.CreateAsync(request.ForDriver(plan.DataFile, new Dictionary<string, string> { ["size"] = "0" }), cancellationToken).ConfigureAwait(false);
        }

        var file = await request.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        await using (file.ConfigureAwait(false))
        {
            int cs = 1 << plan.ClusterBits;
            var header = new Qcow2Header
            {
                Version = (uint)plan.Version,
                ClusterBits = plan.ClusterBits,
                Size = 0,
                RefcountTableOffset = (ulong)cs,
                RefcountTableClusters = 1,
                RefcountOrder = plan.RefcountOrder,
                HeaderLength = (uint)(plan.Version >= 3 ? Qcow2Header.V3Length : Qcow2Header.V2Length),
                CompressionType = plan.CompressionType,
                BackingFile = plan.BackingFile,
                BackingFormat = plan.BackingFile != null ? plan.BackingFormat : null,
                DataFile = plan.DataFile,
            };
            if (plan.ExtendedL2)
                header.Incompatible |= IncompatibleFeatures.ExtendedL2;
            if (plan.CompressionType != 0)
                header.Incompatible |= IncompatibleFeatures.CompressionType;
            if (plan.DataFile != null)
                header.Incompatible |= IncompatibleFeatures.ExternalDataFile;
            if (plan.DataFileRaw)
                header.Autoclear |= AutoclearFeatures.DataFileRaw;
            if (plan.Lazy)
                header.Compatible |= CompatibleFeatures.LazyRefcounts;

            var start = new byte[3 * cs];
            header.Write(start.AsSpan(0, cs));
            BinaryPrimitives.WriteUInt64BigEndian(start.AsSpan(cs), 2UL * (ulong)cs);
            for (int c = 0; c < 3; c++)
                RefcountBlock.Set(start.AsSpan(2 * cs, cs), c, 1 << plan.RefcountOrder, 1);
            await file.WriteAsync(0, start).ConfigureAwait(false);
            await file.FlushAsync().ConfigureAwait(false);
        }

        // Grow to the requested size through the driver: it allocates the L1 table (and preallocates) as any resize does.
        var extra = new JsonObject { ["backing"] = null };
        var image = await graph.OpenImageAsync(request.Filename, new ImageOpenOptions
        {
            Format = "qcow2",
            ExtraOptions = extra,
        }, cancellationToken).ConfigureAwait(false);
        await using (image.ConfigureAwait(false))
        {
            if (plan.Size > 0 || plan.Preallocation != PreallocMode.Off)
                await image.Root!.TruncateAsync((long)plan.Size, plan.Preallocation, exact: true).ConfigureAwait(false);
            if (plan.Encryption is { } e)
                await ((Qcow2NodeDriver)image.Root!.Impl).SetUpEncryptionAsync(e.Method, luksArea).ConfigureAwait(false);
            await image.FlushAsync().ConfigureAwait(false);
        }
    }

    private static Plan Validate(ImageCreateRequest r)
    {
        var encryption = Qcow2EncryptionPlan.FromRequest(r);
        ulong size = r.Size ?? 0;
        size = (size + 511) & ~511UL;
        if (size > (ulong)BlockNode.MaxLength)
            throw new BlockOptionsException($"Image size too large; max {BlockNode.MaxLength}");

        int version = r.GetString("compat") switch
        {
            null or "1.1" or "v3" => 3,
            "0.10" or "v2" => 2,
            var other => throw new BlockOptionsException($"Parameter 'version' does not accept value '{other}'"),
        };
        ulong clusterSize = r.GetSize("cluster_size") ?? 65536;
        if (clusterSize < 512 || clusterSize > 2 << 20 || !BitOperations.IsPow2(clusterSize))
            throw new BlockOptionsException("Cluster size must be a power of two between 512 and 2048k");
        int clusterBits = BitOperations.Log2(clusterSize);

        long refcountBits = r.GetNumber("refcount_bits") ?? 16;
        if (refcountBits < 1 || refcountBits > 64 || !BitOperations.IsPow2((ulong)refcountBits))
            throw new BlockOptionsException("Refcount width must be a power of two and may not exceed 64 bits");
        if (version < 3 && refcountBits != 16)
            throw new BlockOptionsException("Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)");

        bool lazy = r.GetBool("lazy_refcounts") ?? false;
        if (lazy && version < 3)
            throw new BlockOptionsException("Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)");

        var prealloc = r.GetString("preallocation") switch
        {
            null or "off" => PreallocMode.Off,
            "metadata" => PreallocMode.Metadata,
            "falloc" => PreallocMode.Falloc,
            "full" => PreallocMode.Full,
            var other => throw new BlockOptionsException($"Parameter 'preallocation' does not accept value '{other}'"),
        };

        bool extendedL2 = r.GetBool("extended_l2") ?? false;
        if (extendedL2 && clusterBits < 14)
            throw new BlockOptionsException("Extended L2 entries are only supported with cluster sizes of at least 16384 bytes");
        ulong l2Coverage = clusterSize * (clusterSize / (extendedL2 ? 16UL : 8UL));
        if ((size + l2Coverage - 1) / l2Coverage > Qcow2Header.MaxL1Entries)
            throw new BlockOptionsException("The image size is too large for file format 'qcow2' (try using a larger cluster size)");

        byte compression = r.GetString("compression_type") switch
        {
            null or "zlib" => 0,
            "zstd" => 1,
            var other => throw new BlockOptionsException($"Parameter 'compression-type' does not accept value '{other}'"),
        };
        if (compression != 0 && version < 3)
            throw new BlockOptionsException("Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)");

        string? backingFile = r.GetString("backing_file");
        string? backingFormat = r.GetString("backing_fmt");
        if (backingFormat != null && backingFile is null)
            throw new BlockOptionsException("Backing format cannot be used without backing file");
        if (backingFile != null && System.Text.Encoding.UTF8.GetByteCount(backingFile) > Qcow2Header.MaxBackingNameLength)
            throw new BlockOptionsException("Backing file name too long");
        if (backingFile != null && prealloc != PreallocMode.Off && !extendedL2)
            throw new BlockOptionsException("Backing file and preallocation can only be used at the same time if extended_l2 is on");

        string? dataFile = r.GetString("data_file");
        bool dataFileRaw = r.GetBool("data_file_raw") ?? false;
        if (dataFile != null && version < 3)
            throw new BlockOptionsException("External data files are only supported with compatibility level 1.1 and above (use version=v3 or greater)");
        if (dataFileRaw && dataFile is null)
            throw new BlockOptionsException("data-file-raw requires data-file");
        if (dataFileRaw && backingFile != null)
            throw new BlockOptionsException("Backing file and data-file-raw cannot be used at the same time");
        if (dataFileRaw && prealloc == PreallocMode.Off)
        {
            // A raw data file must map every guest cluster to itself, so all L2 entries exist from the start.
            prealloc = PreallocMode.Metadata;
        }

        return new Plan(size, version, clusterBits, BitOperations.Log2((ulong)refcountBits), lazy, extendedL2, compression, prealloc,
            backingFile, backingFormat, dataFile, dataFileRaw, encryption);
    }
}
