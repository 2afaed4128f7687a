using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Block.Crypto.Hashing;
using Block.Crypto.Interop;
using Block.Crypto.Qapi;

namespace Block.Crypto.Kdf;

/// <summary>
/// PBKDF2 (RFC 8018 §5.2) with HMAC over a <see cref="CryptoHashAlgorithm"/>, and the calibration that turns a time
/// budget (<c>iter-time</c>) into an iteration count, as LUKS asks.
/// </summary>
/// <remarks>
/// <para>The HMAC key's inner and outer states are computed once; each iteration is then two runs of the digest's
/// compression function (<see cref="DigestCompression"/>, OpenSSL's one-block transforms with SHA-NI) over blocks whose
/// padding is laid out once. For the key slot of a QEMU-made LUKS image (<c>iter-time=100</c>: 407,562 iterations of
/// HMAC-SHA-256, 64 bytes of key) that is 77 ms on one core here, where the platform's PBKDF2
/// (<see cref="Rfc2898DeriveBytes"/>, OpenSSL's <c>PKCS5_PBKDF2_HMAC</c>) took 200 ms and nettle's, which QEMU runs,
/// 100 ms. A key longer than one digest has independent blocks, derived on separate cores.</para>
/// <para>Where libcrypto is missing or lacks the transforms, SHA-1 and the SHA-2 family go to the platform's PBKDF2,
/// and MD5, which it does not offer, runs the RFC's loop over an incremental HMAC.</para>
/// <para>Calibration times one core deriving the whole output with the same code that derives, as QEMU times its
/// thread's CPU: an iteration count buys the CPU time it was asked for, and a faster PBKDF2 writes larger counts.</para>
/// </remarks>
public static class Pbkdf2
{
    /// <summary>The largest iteration count Block runs (the platform API takes an <see cref="int"/>).</summary>
    public const uint MaxIterations = int.MaxValue;

    /// <summary>Iterations from which the blocks of a longer output are derived on separate cores (about 1 ms of work).</summary>
    private const uint ParallelIterations = 10_000;

    /// <summary>Derives <paramref name="output"/>.Length bytes from <paramref name="password"/> and <paramref name="salt"/>.</summary>
    /// <exception cref="BlockException">EINVAL for 0 or more than <see cref="MaxIterations"/> iterations; ENOTSUP for a hash Block lacks.</exception>
    public static void Derive(CryptoHashAlgorithm hash, ReadOnlySpan<byte> password, ReadOnlySpan<byte> salt, uint iterations, Span<byte> output) =>
        Derive(hash, password, salt, iterations, output, parallel: true);

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

    /// <summary>
    /// Times one core deriving <paramref name="outputLength"/> bytes with doubling iteration counts until one run takes
    /// long enough to measure, and returns the rate. The time is the thread's CPU time (<see cref="ThreadCpuClock"/>),
    /// so a loaded machine does not shrink the count.
    /// </summary>
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
            long start = ThreadCpuClock.NowNanoseconds();
            Derive(hash, password, salt, iterations, output, parallel: false);
            double elapsed = (ThreadCpuClock.NowNanoseconds() - start) / 1e6;
            if (elapsed >= 20 || iterations >= 1u << 30)
            {
                CryptographicOperations.ZeroMemory(output);
                return iterations / Math.Max(elapsed, 0.001);
            }
        }
    }

    /// <summary>Whether <paramref name="hash"/> runs on the reused HMAC states (libcrypto offers its compression function).</summary>
    internal static bool UsesPadStates(CryptoHashAlgorithm hash) => DigestCompression.For(hash) != null;

    /// <summary>Derives one block after another on the calling thread, with the reused HMAC states where available.</summary>
    internal static void DeriveOnOneCore(CryptoHashAlgorithm hash, ReadOnlySpan<byte> password, ReadOnlySpan<byte> salt, uint iterations,
        Span<byte> output) =>
        Derive(hash, password, salt, iterations, output, parallel: false);

    /// <summary>The platform's PBKDF2 (the incremental HMAC loop for MD5): the fallback, and the reference the tests compare with.</summary>
    internal static void DeriveWithPlatform(CryptoHashAlgorithm hash, ReadOnlySpan<byte> password, ReadOnlySpan<byte> salt, uint iterations,
        Span<byte> output)
    {
        CheckIterations(iterations);
        var name = CryptoHash.Name(hash);
        if (hash == CryptoHashAlgorithm.Md5)
            DeriveWithIncrementalHmac(name, CryptoHash.DigestSize(hash), password, salt, iterations, output);
        else
            Rfc2898DeriveBytes.Pbkdf2(password, salt, output, (int)iterations, name);
    }

    private static void Derive(CryptoHashAlgorithm hash, ReadOnlySpan<byte> password, ReadOnlySpan<byte> salt, uint iterations, Span<byte> output,
        bool parallel)
    {
        CheckIterations(iterations);
        CryptoHash.EnsureSupported(hash);
        if (DigestCompression.For(hash) is { } compression)
            DeriveWithPadStates(compression, password, salt, iterations, output, parallel);
        else
            DeriveWithPlatform(hash, password, salt, iterations, output);
    }

    private static unsafe void DeriveWithPadStates(DigestCompression c, ReadOnlySpan<byte> password, ReadOnlySpan<byte> salt, uint iterations,
        Span<byte> output, bool parallel)
    {
        // The two states after the HMAC key's padded blocks: every HMAC of the derivation starts from one of them.
        byte[] padStates = GC.AllocateArray<byte>(2 * LibCrypto.ContextSize, pinned: true);
        int blocks = (output.Length + c.DigestSize - 1) / c.DigestSize;
        byte[] derived = GC.AllocateArray<byte>(blocks * c.DigestSize, pinned: true);
        try
        {
            fixed (byte* states = padStates)
                ComputePadStates(c, password, states, states + LibCrypto.ContextSize);
            if (parallel && blocks > 1 && iterations >= ParallelIterations && Environment.ProcessorCount > 1)
            {
                byte[] saltCopy = salt.ToArray();
                Parallel.For(0, blocks, i => DeriveBlock(c, padStates, saltCopy, (uint)i + 1, iterations, derived.AsSpan(i * c.DigestSize, c.DigestSize)));
            }
            else
            {
                for (int i = 0; i < blocks; i++)
                    DeriveBlock(c, padStates, salt, (uint)i + 1, iterations, derived.AsSpan(i * c.DigestSize, c.DigestSize));
            }
            derived.AsSpan(0, output.Length).CopyTo(output);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(padStates);
            CryptographicOperations.ZeroMemory(derived);
        }
    }

    /// <summary>The states after compressing <c>key ⊕ ipad</c> and <c>key ⊕ opad</c> (a key longer than a block hashed first).</summary>
    private static unsafe void ComputePadStates(DigestCompression c, ReadOnlySpan<byte> password, byte* inner, byte* outer)
    {
        byte* key = stackalloc byte[DigestCompression.MaxBlockSize];
        byte* block = stackalloc byte[DigestCompression.MaxBlockSize];
        var keySpan = new Span<byte>(key, c.BlockSize);
        keySpan.Clear();
        if (password.Length > c.BlockSize)
            c.Hash(password, keySpan[..c.DigestSize]);
        else
            password.CopyTo(keySpan);
        for (int i = 0; i < c.BlockSize; i++)
            block[i] = (byte)(key[i] ^ 0x36);
        c.Initialize(inner);
        c.Compress(inner, block);
        for (int i = 0; i < c.BlockSize; i++)
            block[i] = (byte)(key[i] ^ 0x5c);
        c.Initialize(outer);
        c.Compress(outer, block);
        keySpan.Clear();
        new Span<byte>(block, c.BlockSize).Clear();
    }

    /// <summary>
    /// <c>T_i = U_1 ⊕ … ⊕ U_c</c> with <c>U_1 = HMAC(salt ‖ be32(i))</c> and <c>U_j = HMAC(U_{j−1})</c>. From the second
    /// iteration on, a message is one digest, so the inner and the outer hash are each one compression of a block laid
    /// out once: the digest goes into its first bytes, the padding after it never changes.
    /// </summary>
    private static unsafe void DeriveBlock(DigestCompression c, byte[] padStates, ReadOnlySpan<byte> salt, uint blockIndex, uint iterations,
        Span<byte> t)
    {
        int d = c.DigestSize;
        byte* state = stackalloc byte[LibCrypto.ContextSize];
        byte* inner = stackalloc byte[DigestCompression.MaxBlockSize];
        byte* outer = stackalloc byte[DigestCompression.MaxBlockSize];
        byte[] first = new byte[salt.Length + 4];
        try
        {
            fixed (byte* pads = padStates)
            fixed (byte* sum = t)
            {
                byte* ipad = pads, opad = pads + LibCrypto.ContextSize;
                salt.CopyTo(first);
                BinaryPrimitives.WriteUInt32BigEndian(first.AsSpan(salt.Length), blockIndex);
                Unsafe.CopyBlockUnaligned(state, ipad, LibCrypto.ContextSize);
                c.Finish(state, c.BlockSize, first);
                c.WriteDigest(state, outer);
                Unsafe.CopyBlockUnaligned(state, opad, LibCrypto.ContextSize);
                c.Finish(state, c.BlockSize, new ReadOnlySpan<byte>(outer, d));
                c.WriteDigest(state, inner);
                Unsafe.CopyBlockUnaligned(sum, inner, (uint)d);

                c.PadAfterDigest(inner, c.BlockSize + d);
                c.PadAfterDigest(outer, c.BlockSize + d);
                // The states are copied whole (64 bytes, the largest): a copy of constant size is four vector moves, one
                // of the digest's own size a call to memmove.
                for (uint j = 1; j < iterations; j++)
                {
                    Unsafe.CopyBlockUnaligned(state, ipad, DigestCompression.MaxStateSize);
                    c.Compress(state, inner);
                    c.WriteDigest(state, outer);
                    Unsafe.CopyBlockUnaligned(state, opad, DigestCompression.MaxStateSize);
                    c.Compress(state, outer);
                    c.WriteDigest(state, inner);
                    XorInto(sum, inner, d);
                }
            }
        }
        finally
        {
            new Span<byte>(state, LibCrypto.ContextSize).Clear();
            new Span<byte>(inner, DigestCompression.MaxBlockSize).Clear();
            new Span<byte>(outer, DigestCompression.MaxBlockSize).Clear();
            CryptographicOperations.ZeroMemory(first);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void XorInto(byte* sum, byte* u, int length)
    {
        int i = 0;
        for (; i + 8 <= length; i += 8)
            *(ulong*)(sum + i) ^= *(ulong*)(u + i);
        if (i < length)
            *(uint*)(sum + i) ^= *(uint*)(u + i);
    }

    private static void CheckIterations(uint iterations)
    {
        if (iterations == 0 || iterations > MaxIterations)
            throw new BlockException(Errno.EINVAL, $"PBKDF2 iteration count {iterations} is out of range (1 to {MaxIterations})");
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
