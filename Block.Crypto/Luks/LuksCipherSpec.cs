using Block.Crypto.Ciphers;
using Block.Crypto.Qapi;

namespace Block.Crypto.Luks;

/// <summary>
/// The text form of a cipher suite in a LUKS1 header: a cipher name (<c>aes</c>) and a mode string
/// (<c>xts-plain64</c>, <c>cbc-essiv:sha256</c>), with the key size in a separate field.
/// </summary>
public static class LuksCipherSpec
{
    private static readonly string[] s_families = ["aes", "cast5", "serpent", "twofish"];

    /// <summary>Reads the suite named by a header's <c>cipher_name</c>, <c>cipher_mode</c> and <c>key_bytes</c>.</summary>
    /// <exception cref="ImageFormatException">A name or key size LUKS does not define.</exception>
    public static CipherSuite Parse(string cipherName, string cipherMode, uint keyBytes)
    {
        string modeName = cipherMode, ivgenName = "plain64";
        int dash = cipherMode.IndexOf('-');
        if (dash >= 0)
        {
            modeName = cipherMode[..dash];
            ivgenName = cipherMode[(dash + 1)..];
        }
        else if (cipherMode != "ecb")
        {
            throw new ImageFormatException($"Unexpected cipher mode string format '{cipherMode}'");
        }
        if (!CryptoWireNames.TryParse(modeName, out CryptoCipherMode mode))
            throw new ImageFormatException($"Cipher mode '{modeName}' not supported");

        CryptoHashAlgorithm? ivgenHash = null;
        int colon = ivgenName.IndexOf(':');
        if (colon >= 0)
        {
            if (!CryptoWireNames.TryParse(ivgenName[(colon + 1)..], out CryptoHashAlgorithm h))
                throw new ImageFormatException($"Hash algorithm '{ivgenName[(colon + 1)..]}' not supported");
            ivgenHash = h;
            ivgenName = ivgenName[..colon];
        }
        if (!CryptoWireNames.TryParse(ivgenName, out CryptoIvGenAlgorithm ivgen))
            throw new ImageFormatException($"IV generator '{ivgenName}' not supported");
        if (ivgen == CryptoIvGenAlgorithm.Essiv && ivgenHash is null)
            throw new ImageFormatException("LUKS IV generator 'essiv' needs a hash (essiv:sha256)");

        if (mode == CryptoCipherMode.Xts && keyBytes % 2 != 0)
            throw new ImageFormatException("XTS cipher key length should be a multiple of 2");
        uint cipherKeyBytes = mode == CryptoCipherMode.Xts ? keyBytes / 2 : keyBytes;
        if (!s_families.Contains(cipherName))
            throw new ImageFormatException($"Algorithm '{cipherName}' with key size {cipherKeyBytes} bytes not supported");
        foreach (var algorithm in Enum.GetValues<CryptoCipherAlgorithm>())
        {
            string wire = CryptoWireNames.ToWire(algorithm);
            if (wire.StartsWith(cipherName + "-", StringComparison.Ordinal) && CipherSuite.CipherKeyLength(algorithm) == cipherKeyBytes)
                return new CipherSuite(algorithm, mode, ivgen, ivgenHash);
        }
        throw new ImageFormatException($"Algorithm '{cipherName}' with key size {cipherKeyBytes} bytes not supported");
    }

    /// <summary>The header's <c>cipher_name</c> for <paramref name="suite"/> (<c>aes</c>).</summary>
    public static string CipherName(CipherSuite suite)
    {
        string wire = CryptoWireNames.ToWire(suite.Algorithm);
        int dash = wire.IndexOf('-');
        return dash < 0 ? wire : wire[..dash];
    }

    /// <summary>The header's <c>cipher_mode</c> for <paramref name="suite"/> (<c>xts-plain64</c>, <c>cbc-essiv:sha256</c>).</summary>
    public static string CipherMode(CipherSuite suite)
    {
        string text = CryptoWireNames.ToWire(suite.Mode) + "-" + CryptoWireNames.ToWire(suite.IvGen);
        // QEMU writes the hash whenever one was asked for, even for IV generators that ignore it ("xts-plain64:sha1").
        if (suite.IvGenHash is { } hash)
            text += ":" + CryptoWireNames.ToWire(hash);
        return text;
    }
}
