using System.Text.Json.Serialization;

namespace Block.Crypto.Qapi;

/// <summary>QAPI <c>QCryptoCipherMode</c>: how a block cipher is chained over a sector.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CryptoCipherMode>))]
public enum CryptoCipherMode
{
    /// <summary>Each block on its own (no IV).</summary>
    [JsonStringEnumMemberName("ecb")] Ecb,
    /// <summary>Cipher block chaining, the IV starting each sector's chain.</summary>
    [JsonStringEnumMemberName("cbc")] Cbc,
    /// <summary>XEX with tweak and ciphertext stealing (IEEE 1619); the key is two cipher keys.</summary>
    [JsonStringEnumMemberName("xts")] Xts,
    /// <summary>Counter mode (accepted by QEMU, not offered by Block).</summary>
    [JsonStringEnumMemberName("ctr")] Ctr,
}
