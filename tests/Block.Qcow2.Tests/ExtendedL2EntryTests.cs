using Block.Events;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Invalid subcluster bitmaps (iotest 271's cases): a subcluster both allocated and zero, or allocated in a cluster
/// without a host cluster, fails the request and marks the image corrupt as QEMU does; a compressed cluster with a
/// bitmap still reads and is reported by check with qemu-img check's counts.
/// </summary>
public class ExtendedL2EntryTests
{
    private const long L2Table = 0x40000;

    private static string MakeImage(TempDirectory dir)
    {
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M", "extended_l2=on");
        QemuIo.RunChecked(path, "qcow2", "write -P 0x2a 0 512", "write -c -P 0x11 64k 64k");
        return path;
    }

    public static TheoryData<string, long, ulong, long, string> InvalidBitmaps() => new()
    {
        { "subcluster 0 allocated and zero", L2Table + 8, 0x0000_0001_0000_0001, 0, "Invalid cluster entry found  (L2 offset: 0x40000, L2 index: 0)" },
        { "allocated subcluster without a host cluster", L2Table + 32 * 16 + 8, 1, 2 << 20, "Invalid cluster entry found  (L2 offset: 0x40000, L2 index: 0x20)" },
    };

    [Theory]
    [MemberData(nameof(InvalidBitmaps))]
    public async Task An_invalid_subcluster_bitmap_fails_the_read_and_marks_the_image_corrupt_as_qemu_does(string what, long at, ulong bitmap, long guest, string message)
    {
        using var dir = new TempDirectory();
        string path = MakeImage(dir);
        ImageFile.PokeBe64(path, at, bitmap);
        string twin = dir.File("twin.qcow2");
        File.Copy(path, twin);

        var events = new List<BlockImageCorruptedEvent>();
        await using (var graph = Qcow2Images.NewGraph())
        {
            graph.EventRaised += e =>
            {
                if (e is BlockImageCorruptedEvent c)
                    events.Add(c);
            };
            var backend = await Qcow2Images.OpenAsync(graph, path);
            var e = await Hostile.RefusedAsync(() => backend.ReadAsync(guest, new byte[512]).AsTask());
            Assert.Equal(Errno.EIO, e.Errno);
        }
        var corrupted = Assert.Single(events);
        Assert.Equal(message, corrupted.Message);
        Assert.True(corrupted.Fatal, what);
        Assert.True(QemuImg.Info(path, "qcow2")["format-specific"]!["data"]!["corrupt"]!.GetValue<bool>());

        Assert.Contains($"Marking image as corrupt: {message}", QemuIo.Run(twin, "qcow2", $"read {guest} 512").Stderr);
    }

    [Fact]
    public async Task A_compressed_cluster_with_a_subcluster_bitmap_still_reads_and_check_counts_it_as_qemu_does()
    {
        using var dir = new TempDirectory();
        string path = MakeImage(dir);
        ImageFile.PokeBe64(path, L2Table + 16 + 8, 1);
        byte[] read = await Qcow2Images.ReadWithLibraryAsync(path);
        Assert.Equal(Patterns.Fill(65536, 0x11), read[65536..131072]);

        var qemu = Qcow2Images.CheckJson(path);
        await using var graph = Qcow2Images.NewGraph();
        var backend = await Qcow2Images.OpenAsync(graph, path, readOnly: true);
        var log = new StringWriter();
        var result = await backend.Root!.Impl.CheckAsync(Drivers.CheckRepair.None, log);
        Assert.True(((long?)qemu["corruptions"] ?? 0) == result.Corruptions && ((long?)qemu["leaks"] ?? 0) == (result.Leaks ?? 0),
            $"qemu-img check: {qemu["corruptions"]} corruptions, {qemu["leaks"]} leaks; the library: {result.Corruptions}, {result.Leaks}\n{log}");
        Assert.Contains("compressed cluster 1 with non-zero subcluster allocation bitmap", log.ToString());
    }
}
