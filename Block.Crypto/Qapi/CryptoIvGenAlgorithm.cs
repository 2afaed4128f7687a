using System.Text.Json.Serialization;

namespace Block.Crypto.Qapi;

/// <summary>QAPI <c>QCryptoIVGenAlgorithm</c>: how a sector number becomes the IV of that sector.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CryptoIvGenAlgorithm>))]
public enum CryptoIvGenAlgorithm
{
    /// <summary>The low 32 bits of the sector number, little-endian, in a zeroed IV (wraps at 2 TiB).</summary>
    [JsonStringEnumMemberName("plain")] Plain,
    /// <summary>The 64-bit sector number, little-endian, in a zeroed IV.</summary>
    [JsonStringEnumMemberName("plain64")] Plain64,
    /// <summary>The plain64 IV encrypted with a key that is the hash of the master key (ESSIV).</summary>
    [JsonStringEnumMemberName("essiv")] Essiv,
}
