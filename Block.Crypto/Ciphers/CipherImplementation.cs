namespace Block.Crypto.Ciphers;

/// <summary>Which code runs a cipher: chosen automatically, or forced (tests run every path against the same vectors).</summary>
public enum CipherImplementation
{
    /// <summary>The fastest available: AES-NI on x86 processors that have it, the platform library otherwise.</summary>
    Auto,
    /// <summary>AES-NI through <c>System.Runtime.Intrinsics</c> (fails where the processor lacks it).</summary>
    Intrinsics,
    /// <summary>The platform library (<see cref="System.Security.Cryptography.Aes"/>), one ECB call per run of blocks.</summary>
    Library,
}
