using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Block.Ssh.HostKeys;

/// <summary>A server's public host key as it came in the key exchange: the SSH wire blob and its type name.</summary>
internal sealed class SshHostKey
{
    public SshHostKey(byte[] blob)
    {
        Blob = blob;
        Type = ReadType(blob);
    }

    /// <summary>The key in SSH wire format (<c>string type</c>, then the key's fields).</summary>
    public byte[] Blob { get; }

    /// <summary>The key's type as its blob names it (<c>ssh-ed25519</c>, <c>ssh-rsa</c>, <c>ecdsa-sha2-nistp256</c>…).</summary>
    public string Type { get; }

    /// <summary>The blob's hash of <paramref name="type"/>, as the bytes a fingerprint check compares.</summary>
    public byte[] Hash(Options.SshHostKeyHashType type) => type switch
    {
        Options.SshHostKeyHashType.Md5 => MD5.HashData(Blob),
        Options.SshHostKeyHashType.Sha1 => SHA1.HashData(Blob),
        _ => SHA256.HashData(Blob),
    };

    /// <summary>OpenSSH's fingerprint: <c>SHA256:</c> and the base64 of the hash without padding.</summary>
    public string Sha256Fingerprint => "SHA256:" + Convert.ToBase64String(SHA256.HashData(Blob)).TrimEnd('=');

    private static string ReadType(byte[] blob)
    {
        if (blob.Length < 4)
            return string.Empty;
        uint length = BinaryPrimitives.ReadUInt32BigEndian(blob);
        return length > (uint)(blob.Length - 4) ? string.Empty : Encoding.ASCII.GetString(blob, 4, (int)length);
    }
}
