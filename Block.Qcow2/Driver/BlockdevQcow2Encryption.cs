namespace Block.Qcow2.Driver;

/// <summary>
/// QAPI <c>BlockdevQcow2Encryption</c>: how to unlock an encrypted qcow2 image (<c>encrypt.format</c>,
/// <c>encrypt.key-secret</c>).
/// </summary>
/// <remarks>
/// Both members are optional, as with QEMU's key=value options: the image's header says which format it uses, and a
/// <see cref="Format"/> given here must agree with it. <see cref="Format"/> is kept as text so that a wrong value is
/// reported against the header (<c>Header reported 'luks' encryption format but options specify 'aes'</c>), as QEMU does.
/// </remarks>
public sealed record BlockdevQcow2Encryption
{
    /// <summary>"aes" or "luks"; null to take the header's.</summary>
    public string? Format { get; init; }

    /// <summary>
    /// The id of the secret (<see cref="Block.Secrets.SecretStore"/>) holding the LUKS passphrase or the legacy AES key;
    /// required unless the image is opened for metadata only.
    /// </summary>
    public string? KeySecret { get; init; }
}
