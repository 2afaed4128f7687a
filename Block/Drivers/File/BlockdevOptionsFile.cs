using Block.Options;
using Block.Qapi;

namespace Block.Drivers.File;

/// <summary>QAPI <c>BlockdevOptionsFile</c> (drivers <c>file</c> and <c>host_device</c>).</summary>
public sealed record BlockdevOptionsFile : BlockdevOptions
{
    /// <summary>Creates options for the <c>file</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsFile()
    {
        Driver = "file";
        Filename = string.Empty;
    }

    /// <summary>Path of the file.</summary>
    public required string Filename { get; init; }

    /// <summary>I/O engine: <c>threads</c> (default), <c>inline</c>, or <c>native</c>/<c>io_uring</c>.</summary>
    public BlockdevAioOptions? Aio { get; init; }

    /// <summary>Image locking against other processes: <c>auto</c> (default: on where the file system can), <c>on</c>, <c>off</c>.</summary>
    public OnOffAuto? Locking { get; init; }
}
