using System.Buffers.Binary;
using System.Text;

namespace Block.Qcow2.Format;

/// <summary>
/// The qcow2 header (cluster 0): fixed fields, header extensions, and the backing file name. Parsed from and written
/// to a span, validated in one place, and rewritten without losing what Block does not understand.
/// </summary>
/// <remarks>
/// All integers are big-endian. A version 3 header is written 112 bytes long, as QEMU 5.1+ writes it; fields beyond
/// that and unknown extensions are kept and written back verbatim. The extension order on rewrite is QEMU's:
/// backing format, encryption header pointer, data file name, feature names, bitmaps, unknown ones, end marker,
/// then the backing file name.
/// </remarks>
public sealed class Qcow2Header
{
    /// <summary>"QFI\xfb".</summary>
    public const uint Magic = 0x514649fb;

    /// <summary>Length of the version 2 header.</summary>
    public const int V2Length = 72;

    /// <summary>Length of the version 3 header Block writes.</summary>
    public const int V3Length = 112;

    /// <summary>Smallest valid version 3 header.</summary>
    public const int V3MinLength = 104;

    /// <summary>Extension type: backing file format name.</summary>
    public const uint ExtBackingFormat = 0xE2792ACA;

    /// <summary>Extension type: feature name table.</summary>
    public const uint ExtFeatureTable = 0x6803F857;

    /// <summary>Extension type: persistent bitmaps.</summary>
    public const uint ExtBitmaps = 0x23852875;

    /// <summary>Extension type: full-disk encryption header pointer.</summary>
    public const uint ExtCryptoHeader = 0x0537BE77;

    /// <summary>Extension type: external data file name.</summary>
    public const uint ExtDataFile = 0x44415441;

    /// <summary>QEMU's limit on the backing file name.</summary>
    public const int MaxBackingNameLength = 1023;

    /// <summary>Largest active L1 table QEMU accepts (32 MiB of entries).</summary>
    public const long MaxL1Entries = (32L << 20) / 8;

    /// <summary>Format version: 2 (compat 0.10) or 3 (compat 1.1).</summary>
    public uint Version { get; set; } = 3;

    /// <summary>log2 of the cluster size, 9 to 21.</summary>
    public int ClusterBits { get; set; } = 16;

    /// <summary>Virtual disk size in bytes.</summary>
    public ulong Size { get; set; }

    /// <summary>0 none, 1 legacy AES, 2 LUKS.</summary>
    public uint CryptMethod { get; set; }

    /// <summary>Entries in the active L1 table.</summary>
    public uint L1Size { get; set; }

    /// <summary>Host offset of the active L1 table.</summary>
    public ulong L1TableOffset { get; set; }

    /// <summary>Host offset of the refcount table.</summary>
    public ulong RefcountTableOffset { get; set; }

    /// <summary>Clusters the refcount table occupies.</summary>
    public uint RefcountTableClusters { get; set; }

    /// <summary>Internal snapshots.</summary>
    public uint NbSnapshots { get; set; }

    /// <summary>Host offset of the snapshot table.</summary>
    public ulong SnapshotsOffset { get; set; }

    /// <summary>Incompatible feature bits (version 3).</summary>
    public IncompatibleFeatures Incompatible { get; set; }

    /// <summary>Compatible feature bits (version 3).</summary>
    public CompatibleFeatures Compatible { get; set; }

    /// <summary>Autoclear feature bits (version 3).</summary>
    public AutoclearFeatures Autoclear { get; set; }

    /// <summary>log2 of the refcount width in bits (0..6); 4 in version 2.</summary>
    public int RefcountOrder { get; set; } = 4;

    /// <summary>The header length as read (version 3).</summary>
    public uint HeaderLength { get; set; } = V3Length;

    /// <summary>0 deflate, 1 zstd.</summary>
    public byte CompressionType { get; set; }

    /// <summary>Header bytes beyond the fields Block knows, kept verbatim.</summary>
    public byte[] UnknownHeaderFields { get; set; } = [];

    /// <summary>The backing file name, or null.</summary>
    public string? BackingFile { get; set; }

    /// <summary>The backing file's format from its extension, or null.</summary>
    public string? BackingFormat { get; set; }

    /// <summary>The external data file name from its extension, or null.</summary>
    public string? DataFile { get; set; }

    /// <summary>The encryption header pointer (offset, length), or null.</summary>
    public (ulong Offset, ulong Length)? CryptoHeader { get; set; }

    /// <summary>The bitmaps extension's 24 bytes, or null.</summary>
    public byte[]? BitmapsExtension { get; set; }

    /// <summary>The feature name table as read.</summary>
    public IReadOnlyList<FeatureName> FeatureNames { get; set; } = [];

    /// <summary>Extensions Block does not know, kept and written back.</summary>
    public List<(uint Type, byte[] Data)> UnknownExtensions { get; } = [];

    /// <summary>Cluster size in bytes.</summary>
    public int ClusterSize => 1 << ClusterBits;

    /// <summary>Refcount width in bits.</summary>
    public int RefcountBits => 1 << RefcountOrder;

    /// <summary>True if L2 entries are 128 bits with subcluster bitmaps.</summary>
    public bool ExtendedL2 => (Incompatible & IncompatibleFeatures.ExtendedL2) != 0;

    /// <summary>Parses and validates cluster 0 (or as much of it as the file has).</summary>
    /// <exception cref="ImageFormatException">The header is not a valid qcow2 header, naming the field.</exception>
    public static Qcow2Header Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < V2Length || BinaryPrimitives.ReadUInt32BigEndian(data) != Magic)
            throw new ImageFormatException("Image is not in qcow2 format");
        var h = new Qcow2Header
        {
            Version = BinaryPrimitives.ReadUInt32BigEndian(data[4..]),
        };
        if (h.Version is < 2 or > 3)
            throw new ImageFormatException($"Unsupported qcow2 version {h.Version}", Errno.ENOTSUP);
        ulong backingOffset = BinaryPrimitives.ReadUInt64BigEndian(data[8..]);
        uint backingSize = BinaryPrimitives.ReadUInt32BigEndian(data[16..]);
        uint clusterBits = BinaryPrimitives.ReadUInt32BigEndian(data[20..]);
        if (clusterBits < 9 || clusterBits > 21)
            throw new ImageFormatException($"Unsupported cluster size: 2^{clusterBits}");
        h.ClusterBits = (int)clusterBits;
        h.Size = BinaryPrimitives.ReadUInt64BigEndian(data[24..]);
        h.CryptMethod = BinaryPrimitives.ReadUInt32BigEndian(data[32..]);
        h.L1Size = BinaryPrimitives.ReadUInt32BigEndian(data[36..]);
        h.L1TableOffset = BinaryPrimitives.ReadUInt64BigEndian(data[40..]);
        h.RefcountTableOffset = BinaryPrimitives.ReadUInt64BigEndian(data[48..]);
        h.RefcountTableClusters = BinaryPrimitives.ReadUInt32BigEndian(data[56..]);
        h.NbSnapshots = BinaryPrimitives.ReadUInt32BigEndian(data[60..]);
        h.SnapshotsOffset = BinaryPrimitives.ReadUInt64BigEndian(data[64..]);

        int headerLength = V2Length;
        if (h.Version >= 3)
        {
            if (data.Length < V3MinLength)
                throw new ImageFormatException("qcow2 header truncated");
            h.Incompatible = (IncompatibleFeatures)BinaryPrimitives.ReadUInt64BigEndian(data[72..]);
            h.Compatible = (CompatibleFeatures)BinaryPrimitives.ReadUInt64BigEndian(data[80..]);
            h.Autoclear = (AutoclearFeatures)BinaryPrimitives.ReadUInt64BigEndian(data[88..]);
            uint order = BinaryPrimitives.ReadUInt32BigEndian(data[96..]);
            if (order > 6)
                throw new ImageFormatException($"Reference count entry width too large; may not exceed 64 bits (refcount_order {order})", Errno.ENOTSUP);
            h.RefcountOrder = (int)order;
            h.HeaderLength = BinaryPrimitives.ReadUInt32BigEndian(data[100..]);
            if (h.HeaderLength < V3MinLength)
                throw new ImageFormatException("qcow2 header too short");
            if (h.HeaderLength > h.ClusterSize || h.HeaderLength > data.Length)
                throw new ImageFormatException("qcow2 header exceeds cluster size");
            headerLength = (int)h.HeaderLength;
            if (headerLength > V3MinLength)
                h.CompressionType = data[104];
            if (headerLength > V3Length)
                h.UnknownHeaderFields = data[V3Length..headerLength].ToArray();
        }
        else
        {
            h.HeaderLength = V2Length;
        }

        if (backingOffset != 0)
        {
            if (backingOffset > (ulong)h.ClusterSize)
                throw new ImageFormatException($"Invalid backing file offset {backingOffset}");
            if (backingSize > MaxBackingNameLength || backingOffset + backingSize > (ulong)Math.Min(data.Length, h.ClusterSize))
                throw new ImageFormatException("Backing file name too long");
            h.BackingFile = Encoding.UTF8.GetString(data.Slice((int)backingOffset, (int)backingSize));
        }

        h.ReadExtensions(data, headerLength, backingOffset);
        h.Validate();
        return h;
    }

    private void ReadExtensions(ReadOnlySpan<byte> data, int start, ulong backingOffset)
    {
        int end = backingOffset != 0 ? (int)Math.Min((ulong)data.Length, backingOffset) : Math.Min(data.Length, ClusterSize);
        int pos = start;
        var seen = new HashSet<uint>();
        var features = new List<FeatureName>();
        while (pos + 8 <= end)
        {
            uint type = BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[(pos + 4)..]);
            pos += 8;
            if (type == 0)
                break;
            if (length > (uint)(end - pos))
                throw new ImageFormatException($"Header extension too large (extension 0x{type:x8} at offset {pos - 8}, length {length})");
            if (!seen.Add(type))
                throw new ImageFormatException($"Header extension 0x{type:x8} appears twice");
            var body = data.Slice(pos, (int)length);
            switch (type)
            {
                case ExtBackingFormat:
                    BackingFormat = Encoding.UTF8.GetString(body);
                    break;
                case ExtFeatureTable:
                    for (int i = 0; i + 48 <= body.Length; i += 48)
                    {
                        var nameBytes = body.Slice(i + 2, 46);
                        int zero = nameBytes.IndexOf((byte)0);
                        features.Add(new FeatureName(body[i], body[i + 1], Encoding.UTF8.GetString(zero >= 0 ? nameBytes[..zero] : nameBytes)));
                    }
                    break;
                case ExtCryptoHeader:
                    if (body.Length != 16)
                        throw new ImageFormatException("Invalid encryption header extension length");
                    CryptoHeader = (BinaryPrimitives.ReadUInt64BigEndian(body), BinaryPrimitives.ReadUInt64BigEndian(body[8..]));
                    break;
                case ExtDataFile:
                    DataFile = Encoding.UTF8.GetString(body);
                    break;
                case ExtBitmaps:
                    if (body.Length != 24)
                        throw new ImageFormatException("bitmaps_ext: Invalid extension length");
                    BitmapsExtension = body.ToArray();
                    break;
                default:
                    UnknownExtensions.Add((type, body.ToArray()));
                    break;
            }
            pos += (int)((length + 7) & ~7u);
        }
        FeatureNames = features;
    }

    private void Validate()
    {
        var unknown = (ulong)Incompatible & ~(ulong)IncompatibleFeatures.Known;
        if (unknown != 0)
        {
            // As QEMU: the bits the image's feature table names, by name; the rest as one mask.
            var names = new List<string>();
            for (int bit = 0; bit < 64; bit++)
            {
                if ((unknown & (1UL << bit)) != 0 && FeatureNames.FirstOrDefault(f => f.Kind == 0 && f.Bit == bit).Name is { } name)
                {
                    names.Add(name);
                    unknown &= ~(1UL << bit);
                }
            }
            if (unknown != 0)
                names.Add($"Unknown incompatible feature: {unknown:x}");
            throw new ImageFormatException($"Unsupported qcow2 feature(s): {string.Join(", ", names)}", Errno.ENOTSUP);
        }
        if (Version == 2 && RefcountOrder != 4)
            throw new ImageFormatException("Version 2 images need 16-bit refcounts");
        if ((Incompatible & IncompatibleFeatures.CompressionType) != 0)
        {
            if (CompressionType > 1)
                throw new ImageFormatException($"qcow2: unknown compression type: {CompressionType}", Errno.ENOTSUP);
            if (CompressionType == 0)
                throw new ImageFormatException("qcow2: Compression type incompatible feature bit must not be set for zlib");
        }
        else if (CompressionType != 0)
        {
            throw new ImageFormatException("qcow2: Compression type incompatible feature bit must be set");
        }
        if (ExtendedL2 && ClusterBits < 14)
            throw new ImageFormatException("Extended L2 entries are only supported with cluster sizes of at least 16384 bytes");
        if (CryptMethod > 2)
            throw new ImageFormatException($"Unsupported encryption method {CryptMethod}", Errno.ENOTSUP);
        if (CryptMethod == 2 && CryptoHeader is null)
            throw new ImageFormatException("Missing CRYPTO header for crypt method 2");
        if (CryptoHeader is { } crypto)
        {
            if (CryptMethod != 2)
                throw new ImageFormatException("CRYPTO header extension only expected with LUKS encryption method");
            if ((crypto.Offset & (ulong)(ClusterSize - 1)) != 0)
                throw new ImageFormatException($"Encryption header offset '{crypto.Offset}' is not a multiple of cluster size '{ClusterSize}'");
        }
        if ((L1TableOffset & (ulong)(ClusterSize - 1)) != 0)
            throw new ImageFormatException($"Active L1 table offset invalid ({L1TableOffset:x}: not cluster aligned)");
        if ((RefcountTableOffset & (ulong)(ClusterSize - 1)) != 0)
            throw new ImageFormatException($"Reference count table offset invalid ({RefcountTableOffset:x}: not cluster aligned)");
        if (NbSnapshots > 65536)
            throw new ImageFormatException($"Snapshot table too large ({NbSnapshots} snapshots)");
        if ((SnapshotsOffset & (ulong)(ClusterSize - 1)) != 0)
            throw new ImageFormatException($"Snapshot table offset invalid ({SnapshotsOffset:x}: not cluster aligned)");
        if ((ulong)RefcountTableClusters * (ulong)ClusterSize > 8UL << 20)
            throw new ImageFormatException("Reference count table too large");
        if ((ulong)L1Size * 8 > 32UL << 20)
            throw new ImageFormatException("Active L1 table too large");
        if (Size > (ulong)long.MaxValue)
            throw new ImageFormatException("Image size too large");
    }

    /// <summary>Writes the header, extensions and backing file name into <paramref name="cluster"/> (one cluster, zeroed here).</summary>
    /// <exception cref="BlockException">EFBIG: the extensions and backing name do not fit in the header cluster.</exception>
    public void Write(Span<byte> cluster)
    {
        cluster.Clear();
        BinaryPrimitives.WriteUInt32BigEndian(cluster, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[4..], Version);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[20..], (uint)ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(cluster[24..], Size);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[32..], CryptMethod);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[36..], L1Size);
        BinaryPrimitives.WriteUInt64BigEndian(cluster[40..], L1TableOffset);
        BinaryPrimitives.WriteUInt64BigEndian(cluster[48..], RefcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[56..], RefcountTableClusters);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[60..], NbSnapshots);
        BinaryPrimitives.WriteUInt64BigEndian(cluster[64..], SnapshotsOffset);
        int pos = V2Length;
        if (Version >= 3)
        {
            int length = V3Length + UnknownHeaderFields.Length;
            BinaryPrimitives.WriteUInt64BigEndian(cluster[72..], (ulong)Incompatible);
            BinaryPrimitives.WriteUInt64BigEndian(cluster[80..], (ulong)Compatible);
            BinaryPrimitives.WriteUInt64BigEndian(cluster[88..], (ulong)Autoclear);
            BinaryPrimitives.WriteUInt32BigEndian(cluster[96..], (uint)RefcountOrder);
            BinaryPrimitives.WriteUInt32BigEndian(cluster[100..], (uint)length);
            cluster[104] = CompressionType;
            UnknownHeaderFields.CopyTo(cluster[V3Length..]);
            pos = length;
        }

        if (BackingFormat != null)
            pos = WriteExtension(cluster, pos, ExtBackingFormat, Encoding.UTF8.GetBytes(BackingFormat));
        if (CryptoHeader is { } crypto)
        {
            var body = new byte[16];
            BinaryPrimitives.WriteUInt64BigEndian(body, crypto.Offset);
            BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(8), crypto.Length);
            pos = WriteExtension(cluster, pos, ExtCryptoHeader, body);
        }
        if (DataFile != null)
            pos = WriteExtension(cluster, pos, ExtDataFile, Encoding.UTF8.GetBytes(DataFile));
        // QEMU leaves the feature name table out of headers of 4 KiB clusters and smaller, keeping the room for the
        // backing file name.
        if (Version >= 3 && ClusterSize > 4096)
        {
            var table = new byte[FeatureName.Standard.Length * 48];
            for (int i = 0; i < FeatureName.Standard.Length; i++)
            {
                var f = FeatureName.Standard[i];
                table[i * 48] = f.Kind;
                table[i * 48 + 1] = f.Bit;
                Encoding.UTF8.GetBytes(f.Name).CopyTo(table, i * 48 + 2);
            }
            pos = WriteExtension(cluster, pos, ExtFeatureTable, table);
        }
        if (BitmapsExtension != null)
            pos = WriteExtension(cluster, pos, ExtBitmaps, BitmapsExtension);
        foreach (var (type, data) in UnknownExtensions)
            pos = WriteExtension(cluster, pos, type, data);
        pos = WriteExtension(cluster, pos, 0, []);

        if (BackingFile != null)
        {
            var name = Encoding.UTF8.GetBytes(BackingFile);
            if (name.Length > MaxBackingNameLength || pos + name.Length > cluster.Length)
                throw new BlockException(Errno.EINVAL, "Backing file name too long");
            name.CopyTo(cluster[pos..]);
            BinaryPrimitives.WriteUInt64BigEndian(cluster[8..], (ulong)pos);
            BinaryPrimitives.WriteUInt32BigEndian(cluster[16..], (uint)name.Length);
        }
    }

    private static int WriteExtension(Span<byte> cluster, int pos, uint type, ReadOnlySpan<byte> data)
    {
        int padded = (data.Length + 7) & ~7;
        if (pos + 8 + padded > cluster.Length)
            throw new BlockException(Errno.EFBIG, "Header extensions too large for the header cluster");
        BinaryPrimitives.WriteUInt32BigEndian(cluster[pos..], type);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[(pos + 4)..], (uint)data.Length);
        data.CopyTo(cluster[(pos + 8)..]);
        return pos + 8 + padded;
    }
}
