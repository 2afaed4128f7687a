namespace Block.Qcow2.Encryption;

/// <summary>The header's <c>crypt_method</c>.</summary>
internal enum Qcow2CryptMethod : uint
{
    /// <summary>Not encrypted.</summary>
    None = 0,
    /// <summary>Legacy AES-128-CBC with the secret as key and IVs from guest sectors (<c>encrypt.format=aes</c>).</summary>
    Aes = 1,
    /// <summary>LUKS1 header in clusters named by the full-disk-encryption extension, IVs from host sectors (<c>encrypt.format=luks</c>).</summary>
    Luks = 2,
}
