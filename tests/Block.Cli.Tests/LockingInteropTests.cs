using System.Runtime.Versioning;
using Block.Graph;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>Block takes QEMU's image locks: a Block process and a QEMU process refuse each other as two QEMUs would.</summary>
[SupportedOSPlatform("linux")]
public class LockingInteropTests
{
    [Fact]
    public void While_qemu_io_holds_a_qcow2_image_blk_cannot_open_its_file_for_writing()
    {
        using var dir = new TempDirectory();
        string image = dir.File("img.qcow2");
        QemuImg.Create("qcow2", image, "16M");
        using var holder = ProcessRunner.Start(QemuIo.Path, ["-f", "qcow2", "-c", "sleep 20000", image]);
        try
        {
            WaitForLocks(image);
            var rw = BlkRunner.Run("io", "-f", "raw", "-c", "write 0 512", image);
            Assert.Equal(1, rw.ExitCode);
            Assert.Equal($"blk: can't open device {image}: Failed to get \"write\" lock\nIs another process using the image [{image}]?\n", rw.Stderr);

            // A raw reader shares everything, so it coexists with the qcow2 writer, exactly as qemu-img info -f raw does.
            var ro = BlkRunner.Run("info", "-f", "raw", image);
            Assert.Equal(0, ro.ExitCode);
            var exclusive = BlkRunner.Run("convert", "-f", "raw", "-O", "raw", image, dir.File("copy.raw"));
            Assert.Equal(1, exclusive.ExitCode);
            Assert.Contains("Failed to get shared \"write\" lock", exclusive.Stderr);

            var shared = BlkRunner.Run("io", "-r", "-U", "-f", "raw", "-c", "read 0 512", image);
            Assert.Equal(0, shared.ExitCode);
        }
        finally
        {
            holder.Kill();
            holder.WaitForExit();
        }
    }

    [Fact]
    public async Task While_blk_holds_an_image_without_sharing_writes_qemu_io_cannot_write_it()
    {
        using var dir = new TempDirectory();
        string image = RawImages.Sparse(dir, "a.raw", 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync(image, new ImageOpenOptions
        {
            Format = "raw",
            Backend = new BlockBackendOptions { SharedPermissions = BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged },
        });
        var q = QemuIo.Run(image, "raw", "write 0 512");
        Assert.Equal(1, q.ExitCode);
        Assert.Contains("Failed to get \"write\" lock", q.Stderr);
        Assert.Equal(0, ProcessRunner.Run(QemuIo.Path, ["-r", "-U", "-f", "raw", "-c", "read 0 512", image]).ExitCode);

        await backend.DisposeAsync();
        Assert.Equal(0, QemuIo.Run(image, "raw", "write 0 512").ExitCode);
    }

    [Fact]
    public async Task Blk_takes_the_lock_bytes_qemu_takes()
    {
        using var dir = new TempDirectory();
        string image = RawImages.Sparse(dir, "a.raw", 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync(image, new ImageOpenOptions { Format = "raw" });
        Assert.Equal(["100-101"], LockRanges(image));
        await backend.DisposeAsync();
        Assert.Empty(LockRanges(image));

        var ro = await graph.OpenImageAsync(image, new ImageOpenOptions { Format = "raw", ReadOnly = true });
        Assert.Equal(["100-100"], LockRanges(image));
        await ro.DisposeAsync();
    }

    /// <summary>
    /// The byte ranges in QEMU's lock area (100–299) that some other open file description holds locked, found by
    /// trying to lock each byte.
    /// </summary>
    /// <remarks>
    /// Not read from /proc/locks: the kernel produces that file a page per read, and while other processes lock and
    /// unlock files between two reads a line can appear twice. It did, once, under a loaded machine.
    /// </remarks>
    private static List<string> LockRanges(string path)
    {
        using var probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        var ranges = new List<string>();
        int start = -1;
        for (int b = 100; b <= 300; b++)
        {
            bool locked = b < 300 && IsLocked(probe, b);
            if (locked && start < 0)
                start = b;
            else if (!locked && start >= 0)
            {
                ranges.Add($"{start}-{b - 1}");
                start = -1;
            }
        }
        return ranges;
    }

    private static bool IsLocked(FileStream probe, long position)
    {
        try
        {
            probe.Lock(position, 1);
        }
        catch (IOException)
        {
            return true;
        }
        probe.Unlock(position, 1);
        return false;
    }

    private static void WaitForLocks(string path)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (LockRanges(path).Count == 0)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("qemu-io did not lock the image");
            Thread.Sleep(50);
        }
    }
}
