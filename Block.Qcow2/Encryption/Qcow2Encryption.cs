using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Block.Crypto.Ciphers;
using Block.Crypto.Luks;
using Block.Graph;
using Block.Qcow2.Driver;
using Block.Qcow2.Format;
using Block.Secrets;

namespace Block.Qcow2.Encryption;

/// <summary>
/// An open image's encryption: the method its header names, the cipher that encrypts its data clusters (none when the
/// image was opened for metadata only), and for LUKS the volume whose header lives in the image's own clusters.
/// </summary>
/// <remarks>
/// <para>Only guest data in ordinary data clusters is encrypted, 512-byte sector by sector; metadata never is, and
/// neither are compressed clusters (QEMU writes and reads them in the clear, so the format's interoperability requires
/// the same).</para>
/// <para>IV sector numbers: LUKS counts host sectors (the data's offset in the data file / 512), so moving a cluster
/// needs re-encryption but two guest copies never share IVs; legacy AES counts guest sectors.</para>
/// <para>The legacy AES key is the secret's text (up to its first NUL) cut or zero-padded to 16 bytes, used for
/// AES-128-CBC with plain64 IVs; nothing in the image can tell a wrong key, so any secret opens such an image.</para>
/// </remarks>
internal sealed class Qcow2Encryption : IDisposable
{
    private SectorCipher? _cipher;

    private Qcow2Encryption(Qcow2CryptMethod method, SectorCipher? cipher, LuksVolume? volume)
    {
        Method = method;
        _cipher = cipher;
        Volume = volume;
    }

    /// <summary>The legacy AES suite: AES-128, CBC, plain64 IVs.</summary>
    public static CipherSuite LegacySuite => LegacyQcowAes.Suite;

    /// <summary>The method the header names.</summary>
    public Qcow2CryptMethod Method { get; }

    /// <summary>The data cipher; null when opened without the key (metadata only, or a key to come).</summary>
    public SectorCipher? Cipher => Volatile.Read(ref _cipher);

    /// <summary>
    /// True for a legacy AES image opened with <see cref="Block.Options.BlockdevOptions.KeyLater"/> and no secret until
    /// <see cref="SetLegacyKey"/> gives it (QEMU 2.8's <c>encryption_key_missing</c>).
    /// </summary>
    public bool KeyMissing => Method == Qcow2CryptMethod.Aes && Cipher is null;

    /// <summary>The LUKS volume (LUKS only).</summary>
    public LuksVolume? Volume { get; }

    /// <summary><c>qemu-img info</c>'s <c>encrypt</c> member.</summary>
    public ImageInfoSpecificQcow2Encryption Info => new(FormatName(Method), Volume?.Info);

    /// <summary>The IV sector number of the data at guest offset <paramref name="guestOffset"/>, stored at <paramref name="hostOffset"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong SectorOf(long guestOffset, long hostOffset) =>
        (ulong)((Method == Qcow2CryptMethod.Luks ? hostOffset : guestOffset) / SectorCipher.SectorSize);

    /// <summary>The <c>encrypt.format</c> name of <paramref name="method"/>.</summary>
    public static string FormatName(Qcow2CryptMethod method) => method == Qcow2CryptMethod.Aes ? "aes" : "luks";

    /// <summary>
    /// Checks <paramref name="options"/> against the header and, for an encrypted image, opens its encryption: with the
    /// secret, unlocked; under <paramref name="noIo"/>, locked (the LUKS header is still read and validated); a legacy
    /// AES image without a secret under <paramref name="keyLater"/>, locked until <see cref="SetLegacyKey"/>.
    /// Returns null for an image without encryption.
    /// </summary>
    /// <exception cref="BlockOptionsException">The options disagree with the header, or the secret is missing.</exception>
    /// <exception cref="BlockException">The secret is unknown or wrong (EACCES), or the LUKS header is damaged.</exception>
    public static async ValueTask<Qcow2Encryption?> OpenAsync(Qcow2Header header, BlockNode file, BlockdevQcow2Encryption? options,
        SecretStore secrets, bool noIo, bool keyLater, CancellationToken cancellationToken)
    {
        var method = (Qcow2CryptMethod)header.CryptMethod;
        if (method == Qcow2CryptMethod.None)
        {
            if (options?.Format is { } unwanted)
                throw new BlockOptionsException($"No encryption in image header, but options specified format '{unwanted}'");
            return null;
        }
        string name = FormatName(method);
        if (options?.Format is { } format && format != name)
            throw new BlockOptionsException($"Header reported '{name}' encryption format but options specify '{format}'");

        ReadOnlyMemory<byte>? secret = null;
        // A legacy AES image may open without its key when the caller gives it later (block_passwd), as 2.8's -drive did.
        if (!noIo && !(keyLater && method == Qcow2CryptMethod.Aes && options?.KeySecret is null))
        {
            string id = options?.KeySecret ?? throw new BlockOptionsException("Parameter 'encrypt.key-secret' is required for cipher");
            secret = secrets.Get(id);
        }

        if (method == Qcow2CryptMethod.Aes)
            return new Qcow2Encryption(method, secret is { } key ? CreateLegacyCipher(key.Span, options!.KeySecret!) : null, null);

        var (offset, length) = LuksArea(header, file.Length);
        var volume = await LuksVolume.OpenAsync(new BlockNodeLuksStorage(file, offset, length), secret, cancellationToken: cancellationToken)
            .ConfigureAwait(false);
        return new Qcow2Encryption(method, volume.Cipher, volume);
    }

    /// <summary>The legacy AES cipher keyed by <paramref name="secret"/> (<see cref="LegacyQcowAes.CreateCipher"/>).</summary>
    public static SectorCipher CreateLegacyCipher(ReadOnlySpan<byte> secret, string secretId) => LegacyQcowAes.CreateCipher(secret, secretId);

    /// <summary>
    /// Keys a legacy AES image with <paramref name="password"/> (QEMU 2.8's <c>block_passwd</c>): any password is taken,
    /// since nothing in the image can tell a wrong one. The caller has drained the node, so no request uses the old
    /// cipher, which is wiped.
    /// </summary>
    /// <exception cref="BlockException">"Password incorrect" on a LUKS image, whose passphrase only opens it.</exception>
    public void SetLegacyKey(string password)
    {
        if (Method != Qcow2CryptMethod.Aes)
            throw new BlockException(Errno.EINVAL, "Password incorrect");
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(password);
        SectorCipher cipher;
        try
        {
            cipher = CreateLegacyCipher(bytes, "block_passwd");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
        Interlocked.Exchange(ref _cipher, cipher)?.Dispose();
    }

    /// <summary>
    /// The LUKS area the header extension names (which <see cref="Qcow2Header.Parse"/> requires for LUKS, cluster
    /// aligned), checked to hold a LUKS header inside the file.
    /// </summary>
    private static (long Offset, long Length) LuksArea(Qcow2Header header, long fileLength)
    {
        var area = header.CryptoHeader!.Value;
        if (area.Length < (ulong)LuksHeader.Size)
            throw new ImageFormatException("Request for data outside of extension header");
        if (area.Offset > (ulong)fileLength || area.Length > (ulong)fileLength - area.Offset)
            throw new ImageFormatException($"Encryption header ({area.Offset} + {area.Length} bytes) lies outside the image file ({fileLength} bytes)");
        return ((long)area.Offset, (long)area.Length);
    }

    /// <summary>Wipes the cipher's keys.</summary>
    public void Dispose()
    {
        if (Volume != null)
            Volume.Dispose();
        else
            Cipher?.Dispose();
    }
}
