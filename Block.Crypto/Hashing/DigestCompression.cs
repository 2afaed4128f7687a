using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Block.Crypto.Interop;
using Block.Crypto.Qapi;

namespace Block.Crypto.Hashing;

/// <summary>
/// A Merkle–Damgård digest (MD5, SHA-1, SHA-256, SHA-384, SHA-512) taken apart: its initial state, its compression
/// function over one block (<see cref="LibCrypto"/>), its padding, and the digest read out of a state. PBKDF2 and the
/// anti-forensic splitter run on these so that a state can be computed once and reused.
/// </summary>
/// <remarks>
/// <para>A state is a <see cref="LibCrypto.ContextSize"/>-byte buffer whose first <see cref="StateSize"/> bytes are the
/// chaining words in native order, as OpenSSL's contexts hold them.</para>
/// <para>PBKDF2-HMAC runs two compressions per iteration once the HMAC key's inner and outer states are known, on
/// blocks whose padding never changes; computing it that way instead of through a hash API per iteration is what
/// makes it as fast as nettle's (QEMU's) and twice as fast as the platform's.</para>
/// </remarks>
internal sealed unsafe class DigestCompression
{
    private static readonly DigestCompression? s_md5 = Create(CryptoHashAlgorithm.Md5, "MD5_Transform");
    private static readonly DigestCompression? s_sha1 = Create(CryptoHashAlgorithm.Sha1, "SHA1_Transform");
    private static readonly DigestCompression? s_sha256 = Create(CryptoHashAlgorithm.Sha256, "SHA256_Transform");
    private static readonly DigestCompression? s_sha384 = Create(CryptoHashAlgorithm.Sha384, "SHA512_Transform");
    private static readonly DigestCompression? s_sha512 = Create(CryptoHashAlgorithm.Sha512, "SHA512_Transform");

    private readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<byte*, byte*, void> _transform;
    private readonly ulong[] _initialWords;

    private DigestCompression(CryptoHashAlgorithm algorithm, delegate* unmanaged[Cdecl, SuppressGCTransition]<byte*, byte*, void> transform)
    {
        _transform = transform;
        Algorithm = algorithm;
        DigestSize = CryptoHash.DigestSize(algorithm);
        (BlockSize, WordSize, BigEndian, _initialWords) = algorithm switch
        {
            CryptoHashAlgorithm.Md5 => (64, 4, false, new ulong[] { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 }),
            CryptoHashAlgorithm.Sha1 => (64, 4, true, new ulong[] { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 }),
            CryptoHashAlgorithm.Sha256 => (64, 4, true, new ulong[]
            {
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
            }),
            CryptoHashAlgorithm.Sha384 => (128, 8, true, new ulong[]
            {
                0xcbbb9d5dc1059ed8, 0x629a292a367cd507, 0x9159015a3070dd17, 0x152fecd8f70e5939,
                0x67332667ffc00b31, 0x8eb44a8768581511, 0xdb0c2e0d64f98fa7, 0x47b5481dbefa4fa4,
            }),
            _ => (128, 8, true, new ulong[]
            {
                0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
                0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
            }),
        };
        StateSize = _initialWords.Length * WordSize;
        LengthFieldSize = BlockSize / 8;
    }

    /// <summary>The largest block of the digests here (SHA-512's).</summary>
    public const int MaxBlockSize = 128;

    /// <summary>The largest chaining state of the digests here (SHA-512's eight 64-bit words).</summary>
    public const int MaxStateSize = 64;

    /// <summary>The digest.</summary>
    public CryptoHashAlgorithm Algorithm { get; }

    /// <summary>Bytes per block (64, or 128 for SHA-384 and SHA-512).</summary>
    public int BlockSize { get; }

    /// <summary>Bytes of the digest.</summary>
    public int DigestSize { get; }

    /// <summary>Bytes of the chaining state (a SHA-384 state is SHA-512's, of which the digest is a prefix).</summary>
    public int StateSize { get; }

    /// <summary>Bytes per chaining word (4, or 8 for SHA-384 and SHA-512).</summary>
    public int WordSize { get; }

    /// <summary>Whether words and the length field are big-endian (the SHA family) or little-endian (MD5).</summary>
    public bool BigEndian { get; }

    /// <summary>Bytes of the message length at the end of the last block (8, or 16 for 128-byte blocks).</summary>
    public int LengthFieldSize { get; }

    /// <summary>The compression of <paramref name="algorithm"/>, or null where libcrypto does not offer it.</summary>
    public static DigestCompression? For(CryptoHashAlgorithm algorithm) => algorithm switch
    {
        CryptoHashAlgorithm.Md5 => s_md5,
        CryptoHashAlgorithm.Sha1 => s_sha1,
        CryptoHashAlgorithm.Sha256 => s_sha256,
        CryptoHashAlgorithm.Sha384 => s_sha384,
        CryptoHashAlgorithm.Sha512 => s_sha512,
        _ => null,
    };

    /// <summary>Writes the initial state into <paramref name="state"/>.</summary>
    public void Initialize(byte* state)
    {
        for (int i = 0; i < _initialWords.Length; i++)
        {
            if (WordSize == 4)
                ((uint*)state)[i] = (uint)_initialWords[i];
            else
                ((ulong*)state)[i] = _initialWords[i];
        }
    }

    /// <summary>Runs the compression function over one <see cref="BlockSize"/>-byte block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Compress(byte* state, byte* block) => _transform(state, block);

    /// <summary>
    /// Hashes <paramref name="message"/> onwards from <paramref name="state"/>, which has already absorbed
    /// <paramref name="prefixBytes"/> bytes (whole blocks), padding included: the state then holds the digest's words.
    /// </summary>
    public void Finish(byte* state, long prefixBytes, ReadOnlySpan<byte> message)
    {
        byte* block = stackalloc byte[MaxBlockSize];
        long totalBytes = prefixBytes + message.Length;
        fixed (byte* data = message)
        {
            int offset = 0;
            for (; message.Length - offset >= BlockSize; offset += BlockSize)
                Compress(state, data + offset);
            int rest = message.Length - offset;
            new ReadOnlySpan<byte>(data + offset, rest).CopyTo(new Span<byte>(block, BlockSize));
            var tail = new Span<byte>(block + rest, BlockSize - rest);
            tail.Clear();
            tail[0] = 0x80;
            if (rest + 1 > BlockSize - LengthFieldSize)
            {
                Compress(state, block);
                new Span<byte>(block, BlockSize).Clear();
            }
            WriteLength(block, totalBytes);
            Compress(state, block);
        }
    }

    /// <summary>
    /// Lays out in <paramref name="block"/> the padding of a message of <paramref name="totalBytes"/> whose last block
    /// holds <see cref="DigestSize"/> bytes before it: the bytes after the digest are constant for every such message.
    /// </summary>
    public void PadAfterDigest(byte* block, long totalBytes)
    {
        var tail = new Span<byte>(block + DigestSize, BlockSize - DigestSize);
        tail.Clear();
        tail[0] = 0x80;
        WriteLength(block, totalBytes);
    }

    /// <summary>Writes the digest held in <paramref name="state"/> (<see cref="DigestSize"/> bytes) to <paramref name="digest"/>.</summary>
    /// <remarks>
    /// The byte swaps use SSSE3's shuffle where the CPU has it, tested at run time: Native AOT compiles for the x86-64
    /// baseline, where <see cref="Vector128.Shuffle(Vector128{byte}, Vector128{byte})"/> is a software loop that made a
    /// PBKDF2 iteration half as slow again.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteDigest(byte* state, byte* digest)
    {
        if (!BigEndian)
        {
            Unsafe.CopyBlockUnaligned(digest, state, (uint)DigestSize);
            return;
        }
        int i = 0;
        if (Ssse3.IsSupported)
        {
            var swap = WordSize == 4
                ? Vector128.Create((byte)3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12)
                : Vector128.Create((byte)7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
            for (; i + 16 <= DigestSize; i += 16)
                Sse2.Store(digest + i, Ssse3.Shuffle(Sse2.LoadVector128(state + i), swap));
        }
        if (WordSize == 4)
        {
            for (; i < DigestSize; i += 4)
                Unsafe.WriteUnaligned(digest + i, BinaryPrimitives.ReverseEndianness(*(uint*)(state + i)));
        }
        else
        {
            for (; i < DigestSize; i += 8)
                Unsafe.WriteUnaligned(digest + i, BinaryPrimitives.ReverseEndianness(*(ulong*)(state + i)));
        }
    }

    /// <summary>Hashes <paramref name="message"/> into <paramref name="digest"/> (<see cref="DigestSize"/> bytes).</summary>
    public void Hash(ReadOnlySpan<byte> message, Span<byte> digest)
    {
        byte* state = stackalloc byte[LibCrypto.ContextSize];
        Initialize(state);
        Finish(state, 0, message);
        fixed (byte* d = digest)
            WriteDigest(state, d);
        new Span<byte>(state, LibCrypto.ContextSize).Clear();
    }

    private void WriteLength(byte* block, long totalBytes)
    {
        ulong bits = (ulong)totalBytes * 8;
        if (BigEndian)
            BinaryPrimitives.WriteUInt64BigEndian(new Span<byte>(block + BlockSize - 8, 8), bits);
        else
            BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(block + BlockSize - 8, 8), bits);
    }

    private static DigestCompression? Create(CryptoHashAlgorithm algorithm, string transform)
    {
        var function = LibCrypto.Transform(transform);
        return function == null ? null : new DigestCompression(algorithm, function);
    }
}
