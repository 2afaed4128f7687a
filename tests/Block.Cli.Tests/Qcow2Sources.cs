using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// Source images made once per test class (qemu-io is slow next to a file copy): a populated 64 MiB qcow2 image
/// (<c>src.qcow2</c>, see <see cref="Qcow2Images.Layout"/>), its raw copy (<c>src.raw</c>) and a
/// <c>base.qcow2</c> ← <c>mid.qcow2</c> ← <c>top.qcow2</c> chain.
/// </summary>
public sealed class Qcow2Sources : IDisposable
{
    private readonly TempDirectory _dir = new();

    public Qcow2Sources()
    {
        Qcow2Images.Layout(_dir.File("src.qcow2"));
        QemuImg.Run("convert", "-O", "raw", _dir.File("src.qcow2"), _dir.File("src.raw")).EnsureSuccess("qemu-img convert");
        Qcow2Images.Chain(_dir);
    }

    /// <summary>Twin directories, each with a sparse copy of the sources (holes matter: they are what map and convert see).</summary>
    internal SideBySide CopyToNew()
    {
        var s = new SideBySide();
        s.InBoth(d => ProcessRunner.Run("cp", ["--sparse=always", .. Directory.GetFiles(_dir.Path), d.Path]).EnsureSuccess("cp"));
        return s;
    }

    public void Dispose() => _dir.Dispose();
}
