using Block.Options;

namespace Block.Nfs.Options;

/// <summary>QAPI <c>BlockdevOptionsNfs</c>: an image on an NFS server, reached over NFSv3 with libnfs.</summary>
public sealed record BlockdevOptionsNfs : BlockdevOptions
{
    /// <summary>Creates options for the <c>nfs</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsNfs()
    {
        Driver = "nfs";
        Server = new NfsServer("localhost");
        Path = string.Empty;
    }

    /// <summary>The server.</summary>
    public required NfsServer Server { get; init; }

    /// <summary>The image's path on the server: the directory before the last <c>/</c> is mounted, the rest is the file.</summary>
    public required string Path { get; init; }

    /// <summary>The UID sent to the server; null sends the process's, as libnfs does.</summary>
    public long? User { get; init; }

    /// <summary>The GID sent to the server; null sends the process's.</summary>
    public long? Group { get; init; }

    /// <summary>SYNs sent while connecting (libnfs's <c>tcp-syncnt</c>); null keeps the kernel's.</summary>
    public long? TcpSynCount { get; init; }

    /// <summary>libnfs's readahead in bytes, at most 1 MiB (QEMU's cap); null turns it off.</summary>
    public long? ReadaheadSize { get; init; }

    /// <summary>libnfs's page cache size, at most 2048 (QEMU's cap, 8 MiB of 4 KiB pages); null turns it off.</summary>
    /// <remarks>QEMU passes the value to <c>nfs_set_pagecache</c>, which counts pages, despite the schema's "in bytes"; so do we.</remarks>
    public long? PageCacheSize { get; init; }

    /// <summary>libnfs's debug level, at most 2.</summary>
    public long? Debug { get; init; }
}
