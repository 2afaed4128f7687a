namespace Block.Crypto.Qapi;

/// <summary>
/// The QAPI wire names of the crypto enums (the same as their <c>JsonStringEnumMemberName</c> attributes), as plain
/// switches.
/// </summary>
/// <remarks>
/// The generic <see cref="Block.Qapi.QapiEnum{T}"/> builds its tables by reflection and JIT-compiles frozen dictionaries
/// per enum: about 20–40 ms per enum on a cold start, 100 ms for these four, which every <c>blk</c> command on a LUKS
/// image would pay. A test checks both agree for every member.
/// </remarks>
public static class CryptoWireNames
{
    /// <summary>The wire name of <paramref name="value"/>.</summary>
    public static string ToWire(CryptoCipherAlgorithm value) => value switch
    {
        CryptoCipherAlgorithm.Aes128 => "aes-128",
        CryptoCipherAlgorithm.Aes192 => "aes-192",
        CryptoCipherAlgorithm.Aes256 => "aes-256",
        CryptoCipherAlgorithm.Des => "des",
        CryptoCipherAlgorithm.TripleDes => "3des",
        CryptoCipherAlgorithm.Cast5_128 => "cast5-128",
        CryptoCipherAlgorithm.Serpent128 => "serpent-128",
        CryptoCipherAlgorithm.Serpent192 => "serpent-192",
        CryptoCipherAlgorithm.Serpent256 => "serpent-256",
        CryptoCipherAlgorithm.Twofish128 => "twofish-128",
        CryptoCipherAlgorithm.Twofish192 => "twofish-192",
        CryptoCipherAlgorithm.Twofish256 => "twofish-256",
        _ => throw new ArgumentOutOfRangeException(nameof(value)),
    };

    /// <summary>The wire name of <paramref name="value"/>.</summary>
    public static string ToWire(CryptoCipherMode value) => value switch
    {
        CryptoCipherMode.Ecb => "ecb",
        CryptoCipherMode.Cbc => "cbc",
        CryptoCipherMode.Xts => "xts",
        CryptoCipherMode.Ctr => "ctr",
        _ => throw new ArgumentOutOfRangeException(nameof(value)),
    };

    /// <summary>The wire name of <paramref name="value"/>.</summary>
    public static string ToWire(CryptoIvGenAlgorithm value) => value switch
    {
        CryptoIvGenAlgorithm.Plain => "plain",
        CryptoIvGenAlgorithm.Plain64 => "plain64",
        CryptoIvGenAlgorithm.Essiv => "essiv",
        _ => throw new ArgumentOutOfRangeException(nameof(value)),
    };

    /// <summary>The wire name of <paramref name="value"/>.</summary>
    public static string ToWire(CryptoHashAlgorithm value) => value switch
    {
        CryptoHashAlgorithm.Md5 => "md5",
        CryptoHashAlgorithm.Sha1 => "sha1",
        CryptoHashAlgorithm.Sha224 => "sha224",
        CryptoHashAlgorithm.Sha256 => "sha256",
        CryptoHashAlgorithm.Sha384 => "sha384",
        CryptoHashAlgorithm.Sha512 => "sha512",
        CryptoHashAlgorithm.Ripemd160 => "ripemd160",
        _ => throw new ArgumentOutOfRangeException(nameof(value)),
    };

    /// <summary>Parses a cipher algorithm's wire name.</summary>
    public static bool TryParse(string wire, out CryptoCipherAlgorithm value) => TryFind(wire, Enum.GetValues<CryptoCipherAlgorithm>(), ToWire, out value);

    /// <summary>Parses a cipher mode's wire name.</summary>
    public static bool TryParse(string wire, out CryptoCipherMode value) => TryFind(wire, Enum.GetValues<CryptoCipherMode>(), ToWire, out value);

    /// <summary>Parses an IV generator's wire name.</summary>
    public static bool TryParse(string wire, out CryptoIvGenAlgorithm value) => TryFind(wire, Enum.GetValues<CryptoIvGenAlgorithm>(), ToWire, out value);

    /// <summary>Parses a hash algorithm's wire name.</summary>
    public static bool TryParse(string wire, out CryptoHashAlgorithm value) => TryFind(wire, Enum.GetValues<CryptoHashAlgorithm>(), ToWire, out value);

    private static bool TryFind<T>(string wire, T[] values, Func<T, string> name, out T value)
        where T : struct, Enum
    {
        foreach (var v in values)
        {
            if (name(v) == wire)
            {
                value = v;
                return true;
            }
        }
        value = default;
        return false;
    }
}
