using Block.Crypto.Qapi;
using Block.Qapi;

namespace Block.Crypto.Tests;

/// <summary>The switch-based wire names agree with the QAPI attributes the JSON and option parsers use.</summary>
public class CryptoWireNamesTests
{
    [Fact]
    public void Every_member_has_the_same_wire_name_both_ways()
    {
        foreach (var v in Enum.GetValues<CryptoCipherAlgorithm>())
        {
            Assert.Equal(QapiEnum<CryptoCipherAlgorithm>.ToWire(v), CryptoWireNames.ToWire(v));
            Assert.True(CryptoWireNames.TryParse(CryptoWireNames.ToWire(v), out CryptoCipherAlgorithm back) && back == v);
        }
        foreach (var v in Enum.GetValues<CryptoCipherMode>())
        {
            Assert.Equal(QapiEnum<CryptoCipherMode>.ToWire(v), CryptoWireNames.ToWire(v));
            Assert.True(CryptoWireNames.TryParse(CryptoWireNames.ToWire(v), out CryptoCipherMode back) && back == v);
        }
        foreach (var v in Enum.GetValues<CryptoIvGenAlgorithm>())
        {
            Assert.Equal(QapiEnum<CryptoIvGenAlgorithm>.ToWire(v), CryptoWireNames.ToWire(v));
            Assert.True(CryptoWireNames.TryParse(CryptoWireNames.ToWire(v), out CryptoIvGenAlgorithm back) && back == v);
        }
        foreach (var v in Enum.GetValues<CryptoHashAlgorithm>())
        {
            Assert.Equal(QapiEnum<CryptoHashAlgorithm>.ToWire(v), CryptoWireNames.ToWire(v));
            Assert.True(CryptoWireNames.TryParse(CryptoWireNames.ToWire(v), out CryptoHashAlgorithm back) && back == v);
        }
        Assert.False(CryptoWireNames.TryParse("sha3", out CryptoHashAlgorithm _));
    }
}
