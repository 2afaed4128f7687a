using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Formats.Tests.Parallels;

/// <summary>Reads of allocated clusters go from the BAT entry straight to the file, allocating nothing.</summary>
public class ParallelsHotPathTests
{
    [Fact]
    public void Reads_inside_allocated_clusters_allocate_no_managed_memory()
    {
        using var dir = new TempDirectory();
        string image = dir.File("h.prl");
        QemuImg.Create("parallels", image, "4M");
        Images.QemuIo(image, "parallels", "write -P 0x61 0 4M");
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "parallels", aio: BlockdevAioOptions.Inline);
        var buffer = new byte[4096].AsMemory();
        Read(backend, buffer, 200);

        long before = GC.GetAllocatedBytesForCurrentThread();
        Read(backend, buffer, 1000);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(Patterns.Fill(4096, 0x61), buffer.ToArray());
    }

    /// <summary>Reads 4 KiB at <paramref name="count"/> places of the 4 MiB disk, on this thread (inline engine).</summary>
    private static void Read(BlockBackend backend, Memory<byte> buffer, int count)
    {
        for (int i = 0; i < count; i++)
        {
            long offset = i * 4096L % (4 << 20);
            var read = backend.ReadAsync(offset, buffer);
            if (!read.IsCompletedSuccessfully)
                read.AsTask().GetAwaiter().GetResult();
        }
    }
}
