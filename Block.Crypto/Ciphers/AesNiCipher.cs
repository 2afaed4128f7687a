using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using X86Aes = System.Runtime.Intrinsics.X86.Aes;

namespace Block.Crypto.Ciphers;

/// <summary>
/// AES on the processor's AES instructions (AES-NI): ECB, CBC and XTS with eight blocks in flight per loop
/// iteration, so that the instructions' latency (about four cycles) is hidden behind their throughput.
/// </summary>
/// <remarks>
/// <para>The round keys live in native memory (not on the GC heap, so they are never copied by compaction) and are
/// wiped by <see cref="Dispose"/> or, failing that, by the finalizer.</para>
/// <para>The loops are compiled fully optimised from the first call (<c>AggressiveOptimization</c>): a tiered JIT
/// would otherwise run a disk's first hundred milliseconds of sectors through unoptimised intrinsics code.</para>
/// <para>XTS tweaks are doubled in SSE registers (shift each 64-bit half left, carry the low half's top bit into the
/// high half and fold the high half's top bit back as 0x87), and the XOR of the tweak before and after the rounds is
/// folded into the first and last round keys, so a block costs the AES rounds and little else.</para>
/// </remarks>
internal sealed unsafe class AesNiCipher : BlockCipher
{
    private const int Lanes = 8;
    private readonly int _rounds;
    private Vector128<byte>* _keys;

    /// <summary>True where this implementation runs (x86 with AES-NI).</summary>
    public static bool IsSupported => X86Aes.IsSupported && Sse2.IsSupported;

    /// <summary>Expands <paramref name="key"/> (16, 24 or 32 bytes).</summary>
    public AesNiCipher(ReadOnlySpan<byte> key)
    {
        if (!IsSupported)
            throw new PlatformNotSupportedException("AES-NI is not available");
        _rounds = AesKeyExpansion.Rounds(key.Length);
        int count = _rounds + 1;
        _keys = (Vector128<byte>*)NativeMemory.AlignedAlloc((nuint)(2 * count * 16), 16);
        AesKeyExpansion.Expand(key, new Span<byte>(_keys, count * 16));
        // Decryption keys (the "equivalent inverse cipher" of FIPS-197 §5.3.5): reversed, InvMixColumns on the middle ones.
        var dec = _keys + count;
        dec[0] = _keys[_rounds];
        for (int i = 1; i < _rounds; i++)
            dec[i] = X86Aes.InverseMixColumns(_keys[_rounds - i]);
        dec[_rounds] = _keys[0];
    }

    ~AesNiCipher()
    {
        Free();
    }

    /// <inheritdoc />
    public override int BlockSize => 16;

    private Vector128<byte>* EncKeys => _keys != null ? _keys : throw new ObjectDisposedException(nameof(AesNiCipher));

    private Vector128<byte>* DecKeys => EncKeys + _rounds + 1;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void EncryptEcb(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        CheckLengths(source, destination);
        fixed (byte* s = source, d = destination)
            Ecb<Encryption>(s, d, source.Length / 16, EncKeys);
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void DecryptEcb(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        CheckLengths(source, destination);
        fixed (byte* s = source, d = destination)
            Ecb<Decryption>(s, d, source.Length / 16, DecKeys);
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void EncryptCbc(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> iv)
    {
        CheckLengths(source, destination);
        var k = EncKeys;
        int rounds = _rounds;
        fixed (byte* s0 = source, d0 = destination, ivp = iv)
        {
            byte* s = s0, d = d0;
            var chain = Vector128.Load(ivp);
            for (int n = source.Length / 16; n > 0; n--, s += 16, d += 16)
            {
                var b = Vector128.Load(s) ^ chain ^ k[0];
                for (int r = 1; r < rounds; r++)
                    b = X86Aes.Encrypt(b, k[r]);
                chain = X86Aes.EncryptLast(b, k[rounds]);
                chain.Store(d);
            }
        }
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void DecryptCbc(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> iv)
    {
        CheckLengths(source, destination);
        var k = DecKeys;
        int rounds = _rounds;
        fixed (byte* s0 = source, d0 = destination, ivp = iv)
        {
            byte* s = s0, d = d0;
            int blocks = source.Length / 16;
            var chain = Vector128.Load(ivp);
            var k0 = k[0];
            var last = k[rounds];
            while (blocks >= Lanes)
            {
                // All eight ciphertexts are loaded before anything is stored: in place, they chain into the next blocks.
                var c0 = Vector128.Load(s);
                var c1 = Vector128.Load(s + 16);
                var c2 = Vector128.Load(s + 32);
                var c3 = Vector128.Load(s + 48);
                var c4 = Vector128.Load(s + 64);
                var c5 = Vector128.Load(s + 80);
                var c6 = Vector128.Load(s + 96);
                var c7 = Vector128.Load(s + 112);
                var b0 = c0 ^ k0;
                var b1 = c1 ^ k0;
                var b2 = c2 ^ k0;
                var b3 = c3 ^ k0;
                var b4 = c4 ^ k0;
                var b5 = c5 ^ k0;
                var b6 = c6 ^ k0;
                var b7 = c7 ^ k0;
                for (int r = 1; r < rounds; r++)
                {
                    var kr = k[r];
                    b0 = X86Aes.Decrypt(b0, kr);
                    b1 = X86Aes.Decrypt(b1, kr);
                    b2 = X86Aes.Decrypt(b2, kr);
                    b3 = X86Aes.Decrypt(b3, kr);
                    b4 = X86Aes.Decrypt(b4, kr);
                    b5 = X86Aes.Decrypt(b5, kr);
                    b6 = X86Aes.Decrypt(b6, kr);
                    b7 = X86Aes.Decrypt(b7, kr);
                }
                X86Aes.DecryptLast(b0, last ^ chain).Store(d);
                X86Aes.DecryptLast(b1, last ^ c0).Store(d + 16);
                X86Aes.DecryptLast(b2, last ^ c1).Store(d + 32);
                X86Aes.DecryptLast(b3, last ^ c2).Store(d + 48);
                X86Aes.DecryptLast(b4, last ^ c3).Store(d + 64);
                X86Aes.DecryptLast(b5, last ^ c4).Store(d + 80);
                X86Aes.DecryptLast(b6, last ^ c5).Store(d + 96);
                X86Aes.DecryptLast(b7, last ^ c6).Store(d + 112);
                chain = c7;
                s += 16 * Lanes;
                d += 16 * Lanes;
                blocks -= Lanes;
            }
            for (; blocks > 0; blocks--, s += 16, d += 16)
            {
                var c = Vector128.Load(s);
                var b = c ^ k0;
                for (int r = 1; r < rounds; r++)
                    b = X86Aes.Decrypt(b, k[r]);
                X86Aes.DecryptLast(b, last ^ chain).Store(d);
                chain = c;
            }
        }
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void EncryptXts(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> tweak)
    {
        CheckLengths(source, destination);
        fixed (byte* s = source, d = destination, t = tweak)
            Xts<Encryption>(s, d, source.Length / 16, Vector128.Load(t), EncKeys);
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void DecryptXts(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> tweak)
    {
        CheckLengths(source, destination);
        fixed (byte* s = source, d = destination, t = tweak)
            Xts<Decryption>(s, d, source.Length / 16, Vector128.Load(t), DecKeys);
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    private void Free()
    {
        var keys = _keys;
        if (keys == null)
            return;
        _keys = null;
        new Span<byte>(keys, 2 * (_rounds + 1) * 16).Clear();
        NativeMemory.AlignedFree(keys);
    }

    /// <summary>The next XTS tweak: <paramref name="t"/> times x in GF(2^128), in SSE registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Double(Vector128<byte> t)
    {
        // Sign of each 32-bit lane; lane 3 (top of the high half) goes to lane 0, lane 1 (top of the low half) to lane 2.
        var signs = Sse2.Shuffle(Sse2.ShiftRightArithmetic(t.AsInt32(), 31), 0x13);
        var carries = signs & Vector128.Create(0x87, 0, 1, 0);
        return (Sse2.ShiftLeftLogical(t.AsUInt64(), 1).AsInt32() ^ carries).AsByte();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Ecb<TDirection>(byte* s, byte* d, int blocks, Vector128<byte>* k)
        where TDirection : struct, IDirection
    {
        int rounds = _rounds;
        var k0 = k[0];
        var last = k[rounds];
        while (blocks >= Lanes)
        {
            var b0 = Vector128.Load(s) ^ k0;
            var b1 = Vector128.Load(s + 16) ^ k0;
            var b2 = Vector128.Load(s + 32) ^ k0;
            var b3 = Vector128.Load(s + 48) ^ k0;
            var b4 = Vector128.Load(s + 64) ^ k0;
            var b5 = Vector128.Load(s + 80) ^ k0;
            var b6 = Vector128.Load(s + 96) ^ k0;
            var b7 = Vector128.Load(s + 112) ^ k0;
            for (int r = 1; r < rounds; r++)
            {
                var kr = k[r];
                b0 = TDirection.Round(b0, kr);
                b1 = TDirection.Round(b1, kr);
                b2 = TDirection.Round(b2, kr);
                b3 = TDirection.Round(b3, kr);
                b4 = TDirection.Round(b4, kr);
                b5 = TDirection.Round(b5, kr);
                b6 = TDirection.Round(b6, kr);
                b7 = TDirection.Round(b7, kr);
            }
            TDirection.LastRound(b0, last).Store(d);
            TDirection.LastRound(b1, last).Store(d + 16);
            TDirection.LastRound(b2, last).Store(d + 32);
            TDirection.LastRound(b3, last).Store(d + 48);
            TDirection.LastRound(b4, last).Store(d + 64);
            TDirection.LastRound(b5, last).Store(d + 80);
            TDirection.LastRound(b6, last).Store(d + 96);
            TDirection.LastRound(b7, last).Store(d + 112);
            s += 16 * Lanes;
            d += 16 * Lanes;
            blocks -= Lanes;
        }
        for (; blocks > 0; blocks--, s += 16, d += 16)
        {
            var b = Vector128.Load(s) ^ k0;
            for (int r = 1; r < rounds; r++)
                b = TDirection.Round(b, k[r]);
            TDirection.LastRound(b, last).Store(d);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Xts<TDirection>(byte* s, byte* d, int blocks, Vector128<byte> t, Vector128<byte>* k)
        where TDirection : struct, IDirection
    {
        int rounds = _rounds;
        var k0 = k[0];
        // The eight tweaks go to the stack and come back for the last round: kept in registers across the rounds they
        // would push the blocks out of xmm0–15, the only registers the (VEX-encoded) AES instructions can use.
        Vector128<byte>* tweaks = stackalloc Vector128<byte>[Lanes];
        while (blocks >= Lanes)
        {
            for (int i = 0; i < Lanes; i++)
            {
                tweaks[i] = t;
                t = Double(t);
            }
            var b0 = Vector128.Load(s) ^ tweaks[0] ^ k0;
            var b1 = Vector128.Load(s + 16) ^ tweaks[1] ^ k0;
            var b2 = Vector128.Load(s + 32) ^ tweaks[2] ^ k0;
            var b3 = Vector128.Load(s + 48) ^ tweaks[3] ^ k0;
            var b4 = Vector128.Load(s + 64) ^ tweaks[4] ^ k0;
            var b5 = Vector128.Load(s + 80) ^ tweaks[5] ^ k0;
            var b6 = Vector128.Load(s + 96) ^ tweaks[6] ^ k0;
            var b7 = Vector128.Load(s + 112) ^ tweaks[7] ^ k0;
            for (int r = 1; r < rounds; r++)
            {
                var kr = k[r];
                b0 = TDirection.Round(b0, kr);
                b1 = TDirection.Round(b1, kr);
                b2 = TDirection.Round(b2, kr);
                b3 = TDirection.Round(b3, kr);
                b4 = TDirection.Round(b4, kr);
                b5 = TDirection.Round(b5, kr);
                b6 = TDirection.Round(b6, kr);
                b7 = TDirection.Round(b7, kr);
            }
            // The last round ends with a XOR of its key, so the tweak's second XOR rides on that key.
            var last = k[rounds];
            TDirection.LastRound(b0, last ^ tweaks[0]).Store(d);
            TDirection.LastRound(b1, last ^ tweaks[1]).Store(d + 16);
            TDirection.LastRound(b2, last ^ tweaks[2]).Store(d + 32);
            TDirection.LastRound(b3, last ^ tweaks[3]).Store(d + 48);
            TDirection.LastRound(b4, last ^ tweaks[4]).Store(d + 64);
            TDirection.LastRound(b5, last ^ tweaks[5]).Store(d + 80);
            TDirection.LastRound(b6, last ^ tweaks[6]).Store(d + 96);
            TDirection.LastRound(b7, last ^ tweaks[7]).Store(d + 112);
            s += 16 * Lanes;
            d += 16 * Lanes;
            blocks -= Lanes;
        }
        new Span<byte>(tweaks, Lanes * 16).Clear();
        for (; blocks > 0; blocks--, s += 16, d += 16)
        {
            var b = Vector128.Load(s) ^ (t ^ k0);
            for (int r = 1; r < rounds; r++)
                b = TDirection.Round(b, k[r]);
            TDirection.LastRound(b, k[rounds] ^ t).Store(d);
            t = Double(t);
        }
    }

    private static void CheckLengths(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if ((source.Length & 15) != 0 || destination.Length < source.Length)
            throw new ArgumentException("AES works on whole 16-byte blocks and needs a destination as long as the source");
    }

    /// <summary>Encryption or decryption rounds; a struct type argument, so the JIT compiles one loop for each with no branch inside.</summary>
    private interface IDirection
    {
        static abstract Vector128<byte> Round(Vector128<byte> block, Vector128<byte> key);

        static abstract Vector128<byte> LastRound(Vector128<byte> block, Vector128<byte> key);
    }

    private readonly struct Encryption : IDirection
    {
        public static Vector128<byte> Round(Vector128<byte> block, Vector128<byte> key) => X86Aes.Encrypt(block, key);

        public static Vector128<byte> LastRound(Vector128<byte> block, Vector128<byte> key) => X86Aes.EncryptLast(block, key);
    }

    private readonly struct Decryption : IDirection
    {
        public static Vector128<byte> Round(Vector128<byte> block, Vector128<byte> key) => X86Aes.Decrypt(block, key);

        public static Vector128<byte> LastRound(Vector128<byte> block, Vector128<byte> key) => X86Aes.DecryptLast(block, key);
    }
}
