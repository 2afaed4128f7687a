using Block.Options;

namespace Block.Rbd.Options;

/// <summary>
/// QEMU 7.2's <c>BlockdevOptionsRbd</c> (not in our 2.8 schema): the pool, namespace, image and snapshot, the Ceph
/// configuration file, the user and how to authenticate, and the monitors; plus the free <c>key=value</c> options of
/// an <c>rbd:</c> file name, which QEMU passes to librados as they are.
/// </summary>
public sealed record BlockdevOptionsRbd : BlockdevOptions
{
    /// <summary>Creates options for the <c>rbd</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsRbd()
    {
        Driver = "rbd";
        Pool = string.Empty;
        Image = string.Empty;
    }

    /// <summary>The Ceph pool that holds the image.</summary>
    public required string Pool { get; init; }

    /// <summary>The RADOS namespace inside the pool; null or empty is the default namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>The image's name.</summary>
    public required string Image { get; init; }

    /// <summary>A Ceph configuration file; null reads librados' default search path (<c>/etc/ceph/ceph.conf</c> …), ignoring its absence.</summary>
    public string? Conf { get; init; }

    /// <summary>A snapshot of the image to open, read-only.</summary>
    public string? Snapshot { get; init; }

    /// <summary>The Ceph user (the id without <c>client.</c>); null is librados' default, <c>admin</c>.</summary>
    public string? User { get; init; }

    /// <summary>The authentication modes the client accepts, in order (<c>cephx</c>, <c>none</c>).</summary>
    public IReadOnlyList<string>? AuthClientRequired { get; init; }

    /// <summary>The id of a secret holding the user's key (its raw bytes; the keyring shows them in base64).</summary>
    public string? KeySecret { get; init; }

    /// <summary>The monitors to contact instead of the configuration's <c>mon_host</c>.</summary>
    public IReadOnlyList<RbdServerAddress>? Server { get; init; }

    /// <summary>Image encryption (QEMU's <c>encrypt</c>); given, the open fails: this driver does not load encrypted images.</summary>
    public string? EncryptFormat { get; init; }

    /// <summary>
    /// The other <c>key=value</c> options of an <c>rbd:</c> file name, in order: librados configuration options
    /// (<c>mon_host</c>, <c>rados_osd_op_timeout</c>, <c>rbd_cache</c> …) set after the configuration file is read.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>>? ConfigOptions { get; init; }
}
