using Block.Drivers.File;
using Block.Drivers.Raw;
using Block.Graph;
using Block.TestSupport;

namespace Block.Tests;

/// <summary>
/// <c>host_cdrom</c> as QEMU's Linux one, on the paths that need no real drive: a character device that answers no
/// CD-ROM ioctl (<c>/dev/zero</c>) is a drive with no disc. What a disc in a real drive does (reads, a changed disc's
/// new length, the tray really moving) needs a drive this machine does not have.
/// </summary>
public sealed class HostCdromTests
{
    private static BlockdevOptionsFile Cdrom(string filename, string? nodeName = null) =>
        new() { Driver = "host_cdrom", Filename = filename, NodeName = nodeName };

    [Fact]
    public async Task A_regular_file_is_refused_with_qemus_message()
    {
        using var dir = new TempDirectory();
        string path = dir.File("cd.iso");
        TestImages.CreateZeroFile(path, 4096);
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAnyAsync<BlockException>(async () => await graph.AddNodeAsync(Cdrom(path, "cd")));
        Assert.EndsWith($"'host_cdrom' driver requires '{path}' to be either a character or block device", e.Message);
    }

    [Fact]
    public async Task A_drive_without_a_disc_opens_and_every_request_says_no_medium()
    {
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsRaw { File = Cdrom("/dev/zero"), ReadOnly = true });
        Assert.False(backend.IsInserted);
        Assert.False(backend.IsAvailable);
        Assert.Equal(0, backend.Length);
        var read = await Assert.ThrowsAsync<BlockException>(async () => await backend.ReadAsync(0, new byte[512]));
        Assert.Equal(Errno.ENOMEDIUM, read.Errno);
        var empty = await Assert.ThrowsAsync<BlockException>(async () => await backend.ReadAsync(0, Array.Empty<byte>()));
        Assert.Equal(Errno.ENOMEDIUM, empty.Errno);
    }

    [Fact]
    public async Task A_plain_file_medium_is_always_inserted()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 4096);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsRaw { File = new BlockdevOptionsFile { Filename = path } });
        Assert.True(backend.IsInserted);
        Assert.True(backend.IsAvailable);
    }

    [Fact]
    public async Task A_guests_eject_reaches_the_drive_through_raw_and_a_refused_ioctl_is_warned_as_qemu_perrors_it()
    {
        await using var graph = new BlockGraph();
        var warnings = new List<string>();
        graph.WarningRaised += warnings.Add;
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsRaw { File = Cdrom("/dev/zero"), ReadOnly = true });
        backend.EjectMedium(eject: true);
        backend.EjectMedium(eject: false);
        backend.LockMedium(locked: true);
        Assert.Equal(["CDROMEJECT: Inappropriate ioctl for device", "CDROMCLOSETRAY: Inappropriate ioctl for device"], warnings);
    }

    [Fact]
    public async Task Eject_and_lock_do_nothing_on_media_that_are_not_drives()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 4096);
        await using var graph = new BlockGraph();
        var warnings = new List<string>();
        graph.WarningRaised += warnings.Add;
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsRaw { File = new BlockdevOptionsFile { Filename = path } });
        backend.EjectMedium(eject: true);
        backend.LockMedium(locked: true);
        Assert.Empty(warnings);
        Assert.True(backend.IsInserted);
    }
}
