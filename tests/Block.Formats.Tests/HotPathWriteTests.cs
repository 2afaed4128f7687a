using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Formats.Tests;

/// <summary>
/// Overwrites of allocated data go from the format's table straight to the file through the request tracker of the
/// format node (512-byte alignment), allocating nothing; what they write reads back, and qemu-img finds the image
/// clean (vpc: qemu-img has no check for it).
/// </summary>
public class HotPathWriteTests
{
    [Theory]
    [InlineData("vdi", "vdi")]
    [InlineData("vpc", "vhd")]
    [InlineData("vhdx", "vhdx")]
    [InlineData("qed", "qed")]
    [InlineData("parallels", "prl")]
    public void Overwrites_of_allocated_data_allocate_no_managed_memory(string format, string extension)
    {
        using var dir = new TempDirectory();
        string image = dir.File("w." + extension);
        QemuImg.Create(format, image, "4M");
        Images.QemuIo(image, format, "write -P 0x61 0 4M");
        using (var graph = Images.Graph())
        {
            var backend = Images.Open(graph, image, format, aio: BlockdevAioOptions.Inline);
            var buffer = Patterns.Fill(4096, 0x62).AsMemory();
            Write(backend, buffer, 1024); // every 4 KiB of the disk

            long before = GC.GetAllocatedBytesForCurrentThread();
            Write(backend, buffer, 1000);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        if (format != "vpc") // qemu-img has no check for vpc
            Images.AssertCheckClean(image, format);
        // vpc rounds 4 MiB up to whole CHS cylinders: only the first 4 MiB were written.
        Assert.Equal(Patterns.Fill(4 << 20, 0x62), Images.QemuRaw(dir, image, format)[..(4 << 20)]);
    }

    /// <summary>Writes 4 KiB at <paramref name="count"/> places of the 4 MiB disk, on this thread (inline engine).</summary>
    private static void Write(BlockBackend backend, Memory<byte> buffer, int count)
    {
        for (int i = 0; i < count; i++)
        {
            long offset = i * 4096L % (4 << 20);
            var write = backend.WriteAsync(offset, buffer);
            if (!write.IsCompletedSuccessfully)
                write.AsTask().GetAwaiter().GetResult();
        }
    }
}
