using Block.Crypto.Ciphers;
using Block.Crypto.Qapi;
using Block.Drivers;

namespace Block.Crypto.Luks;

/// <summary>
/// How to create a LUKS volume (QAPI <c>QCryptoBlockCreateOptionsLUKS</c> without the secret): the cipher suite, the
/// hash for PBKDF2 and the splitter, and the time PBKDF2 should take.
/// </summary>
public sealed record LuksCreateOptions
{
    /// <summary>QEMU's default time budget for unlocking a key slot.</summary>
    public const ulong DefaultIterTimeMilliseconds = 2000;

    /// <summary>The cipher suite; QEMU's default is aes-256, xts, plain64.</summary>
    public CipherSuite Suite { get; init; } = CipherSuite.Default;

    /// <summary>The hash for PBKDF2 and the anti-forensic splitter; QEMU's default is sha256.</summary>
    public CryptoHashAlgorithm Hash { get; init; } = CryptoHashAlgorithm.Sha256;

    /// <summary>
    /// Milliseconds PBKDF2 should take to unlock the key slot on this machine; the master key digest gets an eighth of
    /// that, and each gets at least 1000 iterations.
    /// </summary>
    public ulong IterTimeMilliseconds { get; init; } = DefaultIterTimeMilliseconds;

    /// <summary>Which AES code runs.</summary>
    public CipherImplementation Implementation { get; init; } = CipherImplementation.Auto;

    /// <summary>
    /// The <c>-o</c> options of <c>qemu-img create</c> that set these, with <paramref name="prefix"/> in front of each
    /// name (<c>encrypt.</c> for qcow2), in the order qemu-img lists them, preceded by <c>key-secret</c>.
    /// </summary>
    public static IReadOnlyList<CreateOptionDescriptor> Descriptors(string prefix = "") =>
    [
        new(prefix + "key-secret", CreateOptionType.String, "ID of the secret that provides the keyslot passphrase"),
        new(prefix + "cipher-alg", CreateOptionType.String, "Name of encryption cipher algorithm"),
        new(prefix + "cipher-mode", CreateOptionType.String, "Name of encryption cipher mode"),
        new(prefix + "ivgen-alg", CreateOptionType.String, "Name of IV generator algorithm"),
        new(prefix + "ivgen-hash-alg", CreateOptionType.String, "Name of IV generator hash algorithm"),
        new(prefix + "hash-alg", CreateOptionType.String, "Name of encryption hash algorithm"),
        new(prefix + "iter-time", CreateOptionType.Number, "Time to spend in PBKDF in milliseconds"),
    ];

    /// <summary>
    /// Reads the options of <see cref="Descriptors"/> (except <c>key-secret</c>) from a create request, applying QEMU's
    /// defaults (ESSIV hashes with sha256 unless told otherwise).
    /// </summary>
    /// <remarks>A refused value is named without <paramref name="prefix"/> (<c>Parameter 'cipher-alg' does not accept
    /// value 'x'</c>), as QEMU names the members of qcow2's nested <c>encrypt</c> options.</remarks>
    /// <exception cref="BlockOptionsException">A value QEMU would not accept, with QEMU's message.</exception>
    public static LuksCreateOptions FromRequest(ImageCreateRequest request, string prefix = "")
    {
        var algorithm = request.GetEnumValue<CryptoCipherAlgorithm>(prefix, "cipher-alg") ?? CryptoCipherAlgorithm.Aes256;
        var mode = request.GetEnumValue<CryptoCipherMode>(prefix, "cipher-mode") ?? CryptoCipherMode.Xts;
        var ivgen = request.GetEnumValue<CryptoIvGenAlgorithm>(prefix, "ivgen-alg") ?? CryptoIvGenAlgorithm.Plain64;
        var ivgenHash = request.GetEnumValue<CryptoHashAlgorithm>(prefix, "ivgen-hash-alg");
        if (ivgen == CryptoIvGenAlgorithm.Essiv)
            ivgenHash ??= CryptoHashAlgorithm.Sha256;
        var hash = request.GetEnumValue<CryptoHashAlgorithm>(prefix, "hash-alg") ?? CryptoHashAlgorithm.Sha256;
        ulong iterTime = DefaultIterTimeMilliseconds;
        if (request.GetNumber(prefix + "iter-time") is { } n)
            iterTime = unchecked((ulong)n);
        return new LuksCreateOptions
        {
            Suite = new CipherSuite(algorithm, mode, ivgen, ivgenHash),
            Hash = hash,
            IterTimeMilliseconds = iterTime,
        };
    }
    /// <summary>
    /// The bytes the LUKS header and key material of a volume created with these options take (the payload offset), as
    /// <c>qemu-img measure</c> computes them: the options must be valid and name an existing secret, as for creation.
    /// </summary>
    /// <param name="request">The create options.</param>
    /// <param name="prefix"><c>encrypt.</c> for qcow2, empty for a LUKS image.</param>
    /// <exception cref="BlockOptionsException">A bad option or no <c>key-secret</c>, with QEMU's message.</exception>
    /// <exception cref="BlockException">The secret does not exist.</exception>
    public static long MeasureHeaderBytes(ImageCreateRequest request, string prefix = "")
    {
        var options = FromRequest(request, prefix);
        string secretId = request.GetString(prefix + "key-secret")
            ?? throw new BlockOptionsException($"Parameter '{prefix}key-secret' is required for cipher");
        request.Graph.Secrets.Get(secretId);
        return LuksLayout.PayloadOffsetSectors(options.Suite.KeyLength) * 512L;
    }
}
