namespace Block.Formats.Qcow;

/// <summary>QAPI <c>BlockdevQcowEncryption</c>: how to unlock a qcow image encrypted with legacy AES.</summary>
/// <param name="Format">"aes", or null to take the header's; another value is refused against the header, as QEMU does.</param>
/// <param name="KeySecret">The id of the secret whose text is the AES key; needed unless the image is opened for metadata only.</param>
public sealed record BlockdevQcowEncryption(string? Format, string? KeySecret);
