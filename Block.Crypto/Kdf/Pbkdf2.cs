using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using Block.Crypto.Hashing;
using Block.Crypto.Qapi;

namespace Block.Crypto.Kdf;

/// <summary>
/// PBKDF2 (RFC 8018 §5.2) with HMAC over a <see cref="CryptoHashAlgorithm"/>, and the calibration that turns a time
/// budget (<c>iter-time</c>) into an iteration count, as LUKS asks.
/// </summary>
/// <remarks>
/// SHA-1 and the SHA-2 family go to the platform's PBKDF2 (<see cref="Rfc2898DeriveBytes.Pbkdf2(ReadOnlySpan{byte}, ReadOnlySpan{byte}, Span{byte}, int, HashAlgorithmName)"/>,
/// OpenSSL on Linux); MD5, which it does not offer, runs the RFC's loop over an incremental HMAC. Calibration times
/// the same code that derives, so the iteration count buys the time it was asked for.
/// </remarks>
public static class Pbkdf2
{
    /// <summary>The largest iteration count Block runs (the platform API takes an <see cref="int"/>).</summary>
    public const uint MaxIterations = int.MaxValue;

    /// <summary>Derives <paramref name="output"/>.Length bytes from <paramref name="password"/> and <paramref name="salt"/>.</summary>
    /// <exception cref="BlockException">EINVAL for 0 or more than <see cref="MaxIterations"/> iterations; ENOTSUP for a hash Block lacks.</exception>
    public static void Derive(CryptoHashAlgorithm hash, ReadOnlySpan<byte> password, ReadOnlySpan<byte> salt, uint iterations, Span<byte> output)
    {
        if (iterations == 0 || iterations > MaxIterations)
            throw new BlockException(Errno.EINVAL, $"PBKDF2 iteration count {iterations} is out of range (1 to {MaxIterations})");
        var name = CryptoHash.Name(hash);
        if (hash == CryptoHashAlgorithm.Md5)
            DeriveWithIncrementalHmac(name, CryptoHash.DigestSize(hash), password, salt, iterations, output);
        else
            Rfc2898DeriveBytes.Pbkdf2(password, salt, output, (int)iterations, name);
    }

    /// <summary>
    /// How many iterations deriving <paramref name="outputLength"/> bytes takes <paramref name="milliseconds"/> on this
    /// machine (QEMU's and cryptsetup's calibration: measure, then scale).
    /// </summary>
    /// <exception cref="BlockException">ERANGE when the count would not fit the 32-bit field LUKS stores it in.</exception>
    public static ulong IterationsFor(CryptoHashAlgorithm hash, int outputLength, ulong milliseconds)
    {
        double perMillisecond = MeasureIterationsPerMillisecond(hash, outputLength);
        double scaled = perMillisecond * milliseconds;
        if (scaled > uint.MaxValue)
        {
            throw new BlockException(Errno.ERANGE,
                $"PBKDF iterations {(ulong)(perMillisecond * 1000)} too large to scale: Numerical result out of range");
        }
        return (ulong)scaled;
    }

    /// <summary>Times derivations of doubling iteration counts until one takes long enough to measure, and returns the rate.</summary>
    /// <remarks>About 20 ms of work (a measurement shorter than a few milliseconds is mostly timer noise).</remarks>
    public static double MeasureIterationsPerMillisecond(CryptoHashAlgorithm hash, int outputLength)
    {
        Span<byte> password = stackalloc byte[32];
        Span<byte> salt = stackalloc byte[32];
        Span<byte> output = outputLength <= 256 ? stackalloc byte[outputLength] : new byte[outputLength];
        RandomNumberGenerator.Fill(password);
        RandomNumberGenerator.Fill(salt);
        for (uint iterations = 1 << 10; ; iterations *= 2)
        {
            long start = Stopwatch.GetTimestamp();
            Derive(hash, password, salt, iterations, output);
            double elapsed = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (elapsed >= 20 || iterations >= 1u << 30)
            {
                CryptographicOperations.ZeroMemory(output);
                return iterations / Math.Max(elapsed, 0.001);
            }
        }
    }

    private static void DeriveWithIncrementalHmac(HashAlgorithmName name, int digestSize, ReadOnlySpan<byte> password, ReadOnlySpan<byte> salt,
        uint iterations, Span<byte> output)
    {
        using var hmac = IncrementalHash.CreateHMAC(name, password);
        Span<byte> u = stackalloc byte[digestSize];
        Span<byte> t = stackalloc byte[digestSize];
        Span<byte> index = stackalloc byte[4];
        try
        {
            for (uint block = 1; output.Length > 0; block++)
            {
                BinaryPrimitives.WriteUInt32BigEndian(index, block);
                hmac.AppendData(salt);
                hmac.AppendData(index);
                hmac.GetHashAndReset(u);
                u.CopyTo(t);
                for (uint i = 1; i < iterations; i++)
                {
                    hmac.AppendData(u);
                    hmac.GetHashAndReset(u);
                    for (int j = 0; j < digestSize; j++)
                        t[j] ^= u[j];
                }
                int n = Math.Min(digestSize, output.Length);
                t[..n].CopyTo(output);
                output = output[n..];
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(u);
            CryptographicOperations.ZeroMemory(t);
        }
    }
}
