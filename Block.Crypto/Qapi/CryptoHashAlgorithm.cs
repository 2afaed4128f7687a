using System.Text.Json.Serialization;

namespace Block.Crypto.Qapi;

/// <summary>QAPI <c>QCryptoHashAlgorithm</c>: the digests LUKS uses for PBKDF2, the AF splitter and ESSIV.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CryptoHashAlgorithm>))]
public enum CryptoHashAlgorithm
{
    /// <summary>MD5 (16-byte digest).</summary>
    [JsonStringEnumMemberName("md5")] Md5,
    /// <summary>SHA-1 (20-byte digest).</summary>
    [JsonStringEnumMemberName("sha1")] Sha1,
    /// <summary>SHA-224 (28-byte digest; not offered by Block: the BCL has no SHA-224).</summary>
    [JsonStringEnumMemberName("sha224")] Sha224,
    /// <summary>SHA-256 (32-byte digest).</summary>
    [JsonStringEnumMemberName("sha256")] Sha256,
    /// <summary>SHA-384 (48-byte digest).</summary>
    [JsonStringEnumMemberName("sha384")] Sha384,
    /// <summary>SHA-512 (64-byte digest).</summary>
    [JsonStringEnumMemberName("sha512")] Sha512,
    /// <summary>RIPEMD-160 (20-byte digest; not offered by Block: the BCL has no RIPEMD-160).</summary>
    [JsonStringEnumMemberName("ripemd160")] Ripemd160,
}
