using System.Text.Json.Serialization;

namespace Block.Crypto.Qapi;

/// <summary>QAPI <c>QCryptoCipherAlgorithm</c> (QEMU 7.2): a block cipher and its key size.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CryptoCipherAlgorithm>))]
public enum CryptoCipherAlgorithm
{
    /// <summary>AES with a 128-bit key.</summary>
    [JsonStringEnumMemberName("aes-128")] Aes128,
    /// <summary>AES with a 192-bit key.</summary>
    [JsonStringEnumMemberName("aes-192")] Aes192,
    /// <summary>AES with a 256-bit key.</summary>
    [JsonStringEnumMemberName("aes-256")] Aes256,
    /// <summary>DES (QEMU refuses it for LUKS).</summary>
    [JsonStringEnumMemberName("des")] Des,
    /// <summary>Triple DES (QEMU refuses it for LUKS).</summary>
    [JsonStringEnumMemberName("3des")] TripleDes,
    /// <summary>CAST5 with a 128-bit key.</summary>
    [JsonStringEnumMemberName("cast5-128")] Cast5_128,
    /// <summary>Serpent with a 128-bit key.</summary>
    [JsonStringEnumMemberName("serpent-128")] Serpent128,
    /// <summary>Serpent with a 192-bit key.</summary>
    [JsonStringEnumMemberName("serpent-192")] Serpent192,
    /// <summary>Serpent with a 256-bit key.</summary>
    [JsonStringEnumMemberName("serpent-256")] Serpent256,
    /// <summary>Twofish with a 128-bit key.</summary>
    [JsonStringEnumMemberName("twofish-128")] Twofish128,
    /// <summary>Twofish with a 192-bit key.</summary>
    [JsonStringEnumMemberName("twofish-192")] Twofish192,
    /// <summary>Twofish with a 256-bit key.</summary>
    [JsonStringEnumMemberName("twofish-256")] Twofish256,
}
