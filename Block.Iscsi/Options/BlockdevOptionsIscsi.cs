using Block.Options;

namespace Block.Iscsi.Options;

/// <summary>QEMU 7.2's options of the <c>iscsi</c> driver (QAPI <c>BlockdevOptionsIscsi</c>).</summary>
public sealed record BlockdevOptionsIscsi : BlockdevOptions
{
    /// <summary>The transport; only <see cref="IscsiTransport.Tcp"/> opens.</summary>
    public IscsiTransport Transport { get; init; } = IscsiTransport.Tcp;

    /// <summary>The portal's address, <c>host[:port]</c> (port 3260 when omitted; IPv6 hosts in brackets).</summary>
    public required string Portal { get; init; }

    /// <summary>The target's IQN.</summary>
    public required string Target { get; init; }

    /// <summary>The LUN; 0 when omitted.</summary>
    public long? Lun { get; init; }

    /// <summary>The CHAP user name; CHAP is used only when it is set.</summary>
    public string? User { get; init; }

    /// <summary>The CHAP password in clear (QEMU's legacy <c>password</c> option, and the URL's <c>user%password</c>).</summary>
    public string? Password { get; init; }

    /// <summary>The id of a secret holding the CHAP password.</summary>
    public string? PasswordSecret { get; init; }

    /// <summary>The initiator's IQN; QEMU's <c>iqn.2008-11.org.linux-kvm</c> when omitted.</summary>
    public string? InitiatorName { get; init; }

    /// <summary>The header digests offered; <see cref="IscsiHeaderDigest.NoneCrc32c"/> when omitted.</summary>
    public IscsiHeaderDigest? HeaderDigest { get; init; }

    /// <summary>
    /// Seconds a command may take before it fails (0 or omitted: no limit, QEMU's default). A command that gets no
    /// answer in time, also while libiscsi is reconnecting to a target that went away, fails with ETIMEDOUT.
    /// </summary>
    public long? Timeout { get; init; }

    /// <summary>
    /// True when the options came as text (a file name, <c>--image-opts</c>): QEMU then keeps <c>lun</c> as a string,
    /// which shows in the node's <c>json:</c> file name.
    /// </summary>
    public bool FromText { get; init; }
}
