using Block.Crypto.Hashing;
using Block.Crypto.Luks;
using Block.Drivers;

namespace Block.Qcow2.Encryption;

/// <summary>
/// The encryption <c>qemu-img create -f qcow2</c> was asked for (<c>encrypt.format</c>, the deprecated
/// <c>encryption=on</c>, <c>encrypt.key-secret</c> and the LUKS options), validated with QEMU's messages before
/// anything is created.
/// </summary>
internal sealed class Qcow2EncryptionPlan
{
    private const string Prefix = "encrypt.";

    private readonly ReadOnlyMemory<byte> _secret;
    private readonly LuksCreateOptions? _luks;

    private Qcow2EncryptionPlan(Qcow2CryptMethod method, ReadOnlyMemory<byte> secret, LuksCreateOptions? luks)
    {
        Method = method;
        _secret = secret;
        _luks = luks;
    }

    /// <summary>Legacy AES or LUKS.</summary>
    public Qcow2CryptMethod Method { get; }

    /// <summary>Reads and checks the encryption options of <paramref name="request"/>; null when none is asked for.</summary>
    /// <exception cref="BlockException">An option QEMU refuses, an unknown secret, or a cipher suite Block lacks, with QEMU's message.</exception>
    public static Qcow2EncryptionPlan? FromRequest(ImageCreateRequest request)
    {
        string? format = request.GetString(Prefix + "format");
        if (request.GetBool("encryption") == true)
        {
            if (format != null)
                throw new BlockOptionsException("'encrypt.format' and its alias 'encryption' can't be used at the same time");
            format = "aes";
        }
        var others = request.Options.Keys.Where(k => k.StartsWith(Prefix, StringComparison.Ordinal) && k != Prefix + "format").ToList();
        if (format is null)
        {
            if (others.Count > 0)
                throw new BlockOptionsException("Parameter 'encrypt.format' is missing");
            return null;
        }

        LuksCreateOptions? luks = null;
        Qcow2CryptMethod method;
        switch (format)
        {
            case "aes":
                method = Qcow2CryptMethod.Aes;
                if (others.FirstOrDefault(k => k != Prefix + "key-secret") is { } unexpected)
                    throw new BlockOptionsException($"Parameter '{unexpected}' is unexpected");
                break;
            case "luks":
                method = Qcow2CryptMethod.Luks;
                luks = LuksCreateOptions.FromRequest(request, Prefix);
                break;
            default:
                throw new BlockOptionsException($"Parameter 'format' does not accept value '{format}'");
        }

        string secretId = request.GetString(Prefix + "key-secret")
            ?? throw new BlockOptionsException("Parameter 'encrypt.key-secret' is required for cipher");
        var secret = request.Graph.Secrets.Get(secretId);
        if (luks != null)
        {
            luks.Suite.Validate();
            CryptoHash.EnsureSupported(luks.Hash);
        }
        else
        {
            // Checks the secret is usable as a key; the cipher itself is not needed to create the image.
            Qcow2Encryption.CreateLegacyCipher(secret.Span, secretId).Dispose();
        }
        return new Qcow2EncryptionPlan(method, secret, luks);
    }

    /// <summary>
    /// For LUKS, creates the volume (master key, key slot 0 for the secret, PBKDF2 calibrated to <c>iter-time</c>) in
    /// memory and returns its header and key material; empty for legacy AES, which keeps nothing in the image.
    /// </summary>
    public async ValueTask<ReadOnlyMemory<byte>> CreateLuksAreaAsync(CancellationToken cancellationToken)
    {
        if (_luks is null)
            return ReadOnlyMemory<byte>.Empty;
        var area = new StagedLuksArea();
        using var volume = await LuksVolume.CreateAsync(area, _luks, _secret, cancellationToken).ConfigureAwait(false);
        return area.Bytes;
    }
}
