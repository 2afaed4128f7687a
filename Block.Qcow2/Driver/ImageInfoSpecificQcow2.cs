using System.Text.Json;
using Block.Qapi;
using Block.Qcow2.Bitmaps;

namespace Block.Qcow2.Driver;

/// <summary>QAPI <c>ImageInfoSpecificQCow2</c>, with the members qemu-img 7.2 prints.</summary>
public sealed record ImageInfoSpecificQcow2 : ImageInfoSpecific
{
    /// <inheritdoc />
    public override string Type => "qcow2";

    /// <summary>"0.10" or "1.1".</summary>
    public required string Compat { get; init; }

    /// <summary>External data file name.</summary>
    public string? DataFile { get; init; }

    /// <summary>Whether the data file is a valid raw image.</summary>
    public bool? DataFileRaw { get; init; }

    /// <summary>Extended L2 entries (version 3).</summary>
    public bool? ExtendedL2 { get; init; }

    /// <summary>Lazy refcounts (version 3).</summary>
    public bool? LazyRefcounts { get; init; }

    /// <summary>Marked corrupt (version 3).</summary>
    public bool? Corrupt { get; init; }

    /// <summary>Refcount width in bits.</summary>
    public required int RefcountBits { get; init; }

    /// <summary>The encryption, for encrypted images.</summary>
    public ImageInfoSpecificQcow2Encryption? Encrypt { get; init; }

    /// <summary>The stored persistent bitmaps, when the image has any (and their extension is consistent).</summary>
    public IReadOnlyList<Qcow2BitmapInfo>? Bitmaps { get; init; }

    /// <summary>"zlib" or "zstd".</summary>
    public required string CompressionType { get; init; }

    /// <inheritdoc />
    public override void WriteData(Utf8JsonWriter writer)
    {
        // Schema order; printers reorder as QEMU does.
        writer.WriteString("compat", Compat);
        if (DataFile != null)
            writer.WriteString("data-file", DataFile);
        if (DataFileRaw != null)
            writer.WriteBoolean("data-file-raw", DataFileRaw.Value);
        if (ExtendedL2 != null)
            writer.WriteBoolean("extended-l2", ExtendedL2.Value);
        if (LazyRefcounts != null)
            writer.WriteBoolean("lazy-refcounts", LazyRefcounts.Value);
        if (Corrupt != null)
            writer.WriteBoolean("corrupt", Corrupt.Value);
        writer.WriteNumber("refcount-bits", RefcountBits);
        if (Encrypt != null)
        {
            writer.WriteStartObject("encrypt");
            Encrypt.WriteMembers(writer);
            writer.WriteEndObject();
        }
        if (Bitmaps != null)
        {
            writer.WriteStartArray("bitmaps");
            foreach (var bitmap in Bitmaps)
                bitmap.Write(writer);
            writer.WriteEndArray();
        }
        writer.WriteString("compression-type", CompressionType);
    }
}
