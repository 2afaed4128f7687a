using System.Buffers.Binary;

namespace Block.Crypto.Ciphers;

/// <summary>
/// A block cipher under one key, with the chaining modes LUKS uses applied to one run of blocks (one sector or a
/// part of one). Implementations override the modes they can do faster than the generic ECB-based versions here.
/// </summary>
/// <remarks>
/// <para>Every method takes a source and a destination that are either the same memory or do not overlap at all;
/// lengths are whole blocks. Instances are immutable after construction and safe to use from any number of threads
/// at once. <see cref="Dispose"/> wipes the key schedule.</para>
/// <para>The generic XTS here works on 32 blocks (one 512-byte sector) of tweaks at a time: it XORs the tweaks in,
/// encrypts the whole run with one ECB call and XORs them again, which keeps a library ECB (one native call per run)
/// efficient.</para>
/// </remarks>
internal abstract class BlockCipher : IDisposable
{
    private const int TweakRunBytes = 512;

    /// <summary>The block size in bytes (16 for AES).</summary>
    public abstract int BlockSize { get; }

    /// <summary>Encrypts whole blocks independently.</summary>
    public abstract void EncryptEcb(ReadOnlySpan<byte> source, Span<byte> destination);

    /// <summary>Decrypts whole blocks independently.</summary>
    public abstract void DecryptEcb(ReadOnlySpan<byte> source, Span<byte> destination);

    /// <summary>CBC-encrypts one chain starting from <paramref name="iv"/>.</summary>
    public virtual void EncryptCbc(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> iv)
    {
        int bs = BlockSize;
        Span<byte> chain = stackalloc byte[bs];
        iv[..bs].CopyTo(chain);
        for (int i = 0; i < source.Length; i += bs)
        {
            var block = destination.Slice(i, bs);
            Xor(source.Slice(i, bs), chain, block);
            EncryptEcb(block, block);
            block.CopyTo(chain);
        }
    }

    /// <summary>CBC-decrypts one chain starting from <paramref name="iv"/>.</summary>
    public virtual void DecryptCbc(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> iv)
    {
        int bs = BlockSize;
        Span<byte> chain = stackalloc byte[bs];
        Span<byte> next = stackalloc byte[bs];
        iv[..bs].CopyTo(chain);
        for (int i = 0; i < source.Length; i += bs)
        {
            // Keep the ciphertext before it is overwritten (in-place decryption): it chains into the next block.
            source.Slice(i, bs).CopyTo(next);
            var block = destination.Slice(i, bs);
            DecryptEcb(next, block);
            Xor(block, chain, block);
            next.CopyTo(chain);
        }
    }

    /// <summary>
    /// XTS-encrypts one data unit whose first tweak (the IV already encrypted under the tweak key) is
    /// <paramref name="tweak"/>; this cipher holds the data key.
    /// </summary>
    public virtual void EncryptXts(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> tweak) =>
        Xts(source, destination, tweak, encrypt: true);

    /// <summary>XTS-decrypts one data unit (see <see cref="EncryptXts"/>).</summary>
    public virtual void DecryptXts(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> tweak) =>
        Xts(source, destination, tweak, encrypt: false);

    /// <summary>Wipes the key schedule.</summary>
    public abstract void Dispose();

    /// <summary>Multiplies an XTS tweak by x in GF(2^128) (IEEE 1619: little-endian, reduction polynomial 0x87).</summary>
    internal static void DoubleTweak(ref ulong low, ref ulong high)
    {
        ulong reduce = (ulong)((long)high >> 63) & 0x87;
        high = (high << 1) | (low >> 63);
        low = (low << 1) ^ reduce;
    }

    private void Xts(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> tweak, bool encrypt)
    {
        if (BlockSize != 16)
            throw new InvalidOperationException("XTS needs a 16-byte block cipher");
        ulong low = BinaryPrimitives.ReadUInt64LittleEndian(tweak);
        ulong high = BinaryPrimitives.ReadUInt64LittleEndian(tweak[8..]);
        Span<byte> tweaks = stackalloc byte[TweakRunBytes];
        for (int offset = 0; offset < source.Length; offset += TweakRunBytes)
        {
            int n = Math.Min(TweakRunBytes, source.Length - offset);
            for (int b = 0; b < n; b += 16)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(tweaks[b..], low);
                BinaryPrimitives.WriteUInt64LittleEndian(tweaks[(b + 8)..], high);
                DoubleTweak(ref low, ref high);
            }
            var run = destination.Slice(offset, n);
            Xor(source.Slice(offset, n), tweaks[..n], run);
            if (encrypt)
                EncryptEcb(run, run);
            else
                DecryptEcb(run, run);
            Xor(run, tweaks[..n], run);
        }
    }

    private static void Xor(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> result)
    {
        int i = 0;
        for (; i + 8 <= a.Length; i += 8)
        {
            ulong x = BinaryPrimitives.ReadUInt64LittleEndian(a[i..]) ^ BinaryPrimitives.ReadUInt64LittleEndian(b[i..]);
            BinaryPrimitives.WriteUInt64LittleEndian(result[i..], x);
        }
        for (; i < a.Length; i++)
            result[i] = (byte)(a[i] ^ b[i]);
    }
}
