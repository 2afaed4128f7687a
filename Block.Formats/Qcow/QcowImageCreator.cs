using System.Text;
using Block.Crypto.Ciphers;
using Block.Drivers;

namespace Block.Formats.Qcow;

/// <summary>
/// <c>qemu-img create -f qcow</c>: the options qemu-img 7.2 takes, checked in its order with its words, and the image
/// it lays out, byte for byte.
/// </summary>
internal static class QcowImageCreator
{
    /// <summary>The options, in the order qemu-img's "Formatting" line shows them.</summary>
    public static IReadOnlyList<CreateOptionDescriptor> Descriptors { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("backing_file", CreateOptionType.String, "File name of a base image"),
        new("backing_fmt", CreateOptionType.String, "Format of the backing image"),
        new("encryption", CreateOptionType.Bool, "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)"),
        new("encrypt.format", CreateOptionType.String, "Encrypt the image, format choices: 'aes'"),
        new("encrypt.key-secret", CreateOptionType.String, "ID of the secret that provides the AES encryption key"),
        new("preallocation", CreateOptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
    ];

    /// <remarks>
    /// The 48-byte header, the backing file name right after it, then (at the next multiple of 8) the L1 table, zeroed
    /// in whole sectors: nothing else. With a backing file the clusters are 512 bytes (tables of 4096 entries), so a
    /// write never covers part of a cluster, which qcow would fill with zeroes rather than the backing file's data;
    /// without one, 4 KiB clusters and tables of 512 entries. The backing format has no place in the header (QEMU
    /// probes the backing file on open). Preallocation applies to the empty file QEMU creates first, so it changes
    /// nothing.
    /// </remarks>
    public static async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ulong size = (request.Size ?? 0) + 511 & ~511UL;
        string? backingFile = request.GetString("backing_file");
        _ = request.GetString("backing_fmt");
        string? encryptFormat = request.GetString("encrypt.format");
        if (request.GetBool("encryption") == true)
        {
            if (encryptFormat != null)
                throw new BlockOptionsException("'encrypt.format' and its alias 'encryption' can't be used at the same time");
            encryptFormat = "aes";
        }
        string? secretId = request.GetString("encrypt.key-secret");
        if (encryptFormat is null && secretId != null)
            throw new BlockOptionsException("Parameter 'encrypt.format' is missing");
        if (encryptFormat is not (null or "aes" or "luks"))
            throw new BlockOptionsException($"Parameter 'format' does not accept value '{encryptFormat}'");
        var preallocation = request.GetEnum<Qapi.PreallocMode>("preallocation") ?? Qapi.PreallocMode.Off;
        if (preallocation == Qapi.PreallocMode.Metadata)
            throw new BlockOptionsException("Unsupported preallocation mode: metadata");

        await using var file = await request.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        request.Finish("qcow");
        // QEMU creates the (empty) file first, then checks these.
        if (size == 0)
            throw new BlockOptionsException("Image size is too small, cannot be zero length");
        if (encryptFormat == "luks")
            throw new BlockOptionsException("Unsupported encryption format");
        if (encryptFormat == "aes")
        {
            string id = secretId ?? throw new BlockOptionsException("Parameter 'encrypt.key-secret' is required for cipher");
            // Checks the secret is usable as a key; the image holds nothing derived from it.
            LegacyQcowAes.CreateCipher(request.Graph.Secrets.Get(id).Span, id).Dispose();
        }

        byte[] name = backingFile is null ? [] : Encoding.UTF8.GetBytes(backingFile);
        int clusterBits = backingFile is null ? 12 : 9, l2Bits = backingFile is null ? 9 : 12;
        int headerBytes = (QcowHeader.Size + name.Length + 7) & ~7;
        var header = new QcowHeader
        {
            BackingFileOffset = backingFile is null ? 0UL : QcowHeader.Size,
            BackingFileSize = (uint)name.Length,
            DiskSize = size,
            ClusterBits = clusterBits,
            L2Bits = l2Bits,
            CryptMethod = encryptFormat is null ? QcowHeader.CryptNone : QcowHeader.CryptAes,
            L1TableOffset = (ulong)headerBytes,
        };
        var start = new byte[QcowHeader.Size + name.Length];
        header.Write(start);
        name.CopyTo(start, QcowHeader.Size);
        await file.WriteAsync(0, start).ConfigureAwait(false);
        long l1Bytes = (QcowHeader.L1SizeFor(size, clusterBits, l2Bits) * 8 + 511) & ~511L;
        await file.WriteZeroesAsync(headerBytes, l1Bytes).ConfigureAwait(false);
        await file.FlushAsync().ConfigureAwait(false);
    }
}
