using System.Security.Cryptography;

namespace Block.Crypto.Ciphers;

/// <summary>The AES key schedule of FIPS-197 §5.2, for the hardware AES path (the instructions do the rounds, not the schedule).</summary>
/// <remarks>
/// The S-box is computed from its definition (multiplicative inverse in GF(2^8) modulo x^8+x^4+x^3+x+1, then the
/// affine transform with constant 0x63) rather than written out as a table.
/// </remarks>
internal static class AesKeyExpansion
{
    private static readonly byte[] s_sbox = BuildSbox();

    /// <summary>The number of rounds for a key of <paramref name="keyLength"/> bytes (10, 12 or 14).</summary>
    public static int Rounds(int keyLength) => keyLength switch
    {
        16 => 10,
        24 => 12,
        32 => 14,
        _ => throw new ArgumentException($"AES keys are 16, 24 or 32 bytes, not {keyLength}", nameof(keyLength)),
    };

    /// <summary>Expands <paramref name="key"/> into <c>(rounds + 1) × 16</c> bytes of round keys, in the byte order the AES instructions use.</summary>
    public static void Expand(ReadOnlySpan<byte> key, Span<byte> roundKeys)
    {
        int nk = key.Length / 4;
        int words = 4 * (Rounds(key.Length) + 1);
        key.CopyTo(roundKeys);
        byte rcon = 1;
        Span<byte> temp = stackalloc byte[4];
        for (int i = nk; i < words; i++)
        {
            roundKeys.Slice((i - 1) * 4, 4).CopyTo(temp);
            if (i % nk == 0)
            {
                byte first = temp[0];
                temp[0] = (byte)(s_sbox[temp[1]] ^ rcon);
                temp[1] = s_sbox[temp[2]];
                temp[2] = s_sbox[temp[3]];
                temp[3] = s_sbox[first];
                rcon = MultiplyByX(rcon);
            }
            else if (nk > 6 && i % nk == 4)
            {
                for (int j = 0; j < 4; j++)
                    temp[j] = s_sbox[temp[j]];
            }
            for (int j = 0; j < 4; j++)
                roundKeys[i * 4 + j] = (byte)(roundKeys[(i - nk) * 4 + j] ^ temp[j]);
        }
        CryptographicOperations.ZeroMemory(temp);
    }

    private static byte MultiplyByX(byte b) => (byte)((b << 1) ^ ((b & 0x80) != 0 ? 0x1B : 0));

    private static byte Multiply(byte a, byte b)
    {
        byte product = 0;
        for (int i = 0; i < 8; i++)
        {
            if ((b & 1) != 0)
                product ^= a;
            a = MultiplyByX(a);
            b >>= 1;
        }
        return product;
    }

    private static byte[] BuildSbox()
    {
        var sbox = new byte[256];
        for (int x = 0; x < 256; x++)
        {
            // x^254 is the inverse of x in GF(2^8) (and maps 0 to 0, as the S-box definition asks).
            byte inverse = 1, power = (byte)x;
            for (int e = 254; e > 0; e >>= 1)
            {
                if ((e & 1) != 0)
                    inverse = Multiply(inverse, power);
                power = Multiply(power, power);
            }
            if (x == 0)
                inverse = 0;
            int b = inverse;
            int rotated = b ^ Rotl(b, 1) ^ Rotl(b, 2) ^ Rotl(b, 3) ^ Rotl(b, 4);
            sbox[x] = (byte)(rotated ^ 0x63);
        }
        return sbox;
    }

    private static int Rotl(int b, int n) => ((b << n) | (b >> (8 - n))) & 0xFF;
}
