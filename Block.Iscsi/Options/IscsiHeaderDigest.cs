using System.Text.Json.Serialization;

namespace Block.Iscsi.Options;

/// <summary>QAPI <c>IscsiHeaderDigest</c>: the header digests offered at login, in order of preference.</summary>
public enum IscsiHeaderDigest
{
    /// <summary>CRC32C only.</summary>
    [JsonStringEnumMemberName("crc32c")]
    Crc32c,

    /// <summary>No digest only.</summary>
    [JsonStringEnumMemberName("none")]
    None,

    /// <summary>CRC32C, else none.</summary>
    [JsonStringEnumMemberName("crc32c-none")]
    Crc32cNone,

    /// <summary>None, else CRC32C: QEMU's default.</summary>
    [JsonStringEnumMemberName("none-crc32c")]
    NoneCrc32c,
}
