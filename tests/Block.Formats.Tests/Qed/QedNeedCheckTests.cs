using System.Buffers.Binary;
using Block.Drivers.File;
using Block.Graph;
using Block.Qcow2.Tests;
using Block.TestSupport;

namespace Block.Formats.Tests.Qed;

/// <summary>
/// The need-check flag as QEMU uses it: set in the file before the first allocation of an image without a backing
/// file, never with one, cleared on a clean close; an image left with it is repaired on a writable open and read as
/// it is on a read-only one. Crash prefixes: after every prefix of the writes an allocating workload sends to the
/// file, the image checks with leaks at worst, and opens.
/// </summary>
public class QedNeedCheckTests
{
    private static ulong Features(string image)
    {
        using var f = new FileStream(image, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var b = new byte[24];
        f.ReadExactly(b);
        return BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(16));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_flag_is_set_while_allocating_without_a_backing_file_and_cleared_on_close(bool withBacking)
    {
        using var dir = new TempDirectory();
        string image = dir.File("n.qed");
        if (withBacking)
        {
            QemuImg.Create("raw", dir.File("base.raw"), "4M");
            QemuImg.Create("qed", image, "4M", "backing_file=base.raw,backing_fmt=raw");
        }
        else
        {
            QemuImg.Create("qed", image, "4M");
        }
        ulong before = Features(image);
        using (var graph = Images.Graph())
        {
            var backend = Images.Open(graph, image, "qed");
            BlockIo.Write(backend, 65536, Patterns.Fill(4096, 0x5a));
            Assert.Equal(withBacking ? before : before | 2, Features(image));
        }
        Assert.Equal(before, Features(image));
        Images.AssertCheckClean(image, "qed");
    }

    /// <summary>An image with the flag and an L2 entry past the end of the file, as a crash could leave it.</summary>
    private static string Broken(TempDirectory dir, string name)
    {
        string image = dir.File(name);
        QemuImg.Create("qed", image, "4M");
        Images.QemuIo(image, "qed", "write -P 0x61 0 64k", "write -P 0x62 64k 64k");
        using var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite);
        var b = new byte[8];
        f.Position = 16;
        BinaryPrimitives.WriteUInt64LittleEndian(b, 2);
        f.Write(b);
        // The L2 table follows the first data cluster; its second entry now names a cluster far past the end.
        f.Position = 0x60000 + 8;
        BinaryPrimitives.WriteUInt64LittleEndian(b, 0x10_0000_0000);
        f.Write(b);
        return image;
    }

    [Fact]
    public void A_writable_open_repairs_a_flagged_image_as_qemu_does_and_a_read_only_open_reads_it_as_it_is()
    {
        using var dir = new TempDirectory();
        string ours = Broken(dir, "b.qed"), theirs = Broken(dir, "q.qed");

        using (var graph = Images.Graph())
        {
            var backend = Images.Open(graph, ours, "qed", readOnly: true);
            Assert.Equal(Patterns.Fill(65536, 0x61), BlockIo.Read(backend, 0, 65536));
            var e = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 65536, 4096));
            Assert.Contains("L2 entry for guest offset 0x10000", e.Message, StringComparison.Ordinal);
        }
        Assert.Equal(2ul, Features(ours));

        QemuIo.RunChecked(theirs, "qed", "read -P 0 64k 64k");
        Images.BlkIo(ours, "qed", "read -P 0 64k 64k", "read -P 0x61 0 64k");
        QedInteropTests.AssertSameBytes(theirs, ours);
        Assert.Equal(0ul, Features(ours));
        Images.AssertSameOutput("check", "-f", "qed", ours);
    }

    [Theory]
    [InlineData("check", "-r", "leaks")]
    [InlineData("check", "-r", "all")]
    [InlineData("check")]
    [InlineData("check", "--output=json")]
    public void Check_and_repair_of_a_flagged_image_equal_qemu_img(params string[] command)
    {
        using var dir = new TempDirectory();
        string ours = Broken(dir, "b.qed"), theirs = Broken(dir, "q.qed");
        var q = QemuImg.Run([.. command, "-f", "qed", theirs]);
        var b = BlkRunner.Run([.. command, "-f", "qed", ours]);
        Assert.Equal((q.ExitCode, q.Stdout.Replace(theirs, ours, StringComparison.Ordinal), BlkRunner.AsBlk(q.Stderr)), (b.ExitCode, b.Stdout, b.Stderr));
        QedInteropTests.AssertSameBytes(theirs, ours);
    }

    private static BlockBackend OpenBackend(TestGraph graph, Block.Options.BlockdevOptions options) =>
        graph.Graph.OpenBackendAsync(options).AsTask().GetAwaiter().GetResult();

    [Theory]
    [InlineData(false, "")]
    [InlineData(false, "cluster_size=4k,table_size=2")]
    [InlineData(true, "")]
    public void Every_prefix_of_the_writes_of_an_allocating_workload_checks_with_leaks_at_worst(bool withBacking, string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("c.qed");
        const int size = 4 << 20;
        var expected = new byte[size];
        if (withBacking)
        {
            var content = Patterns.Random(size, 99);
            File.WriteAllBytes(dir.File("base.raw"), content);
            content.CopyTo(expected, 0);
            QemuImg.Create("qed", image, "4M", (options.Length > 0 ? options + "," : "") + "backing_file=base.raw,backing_fmt=raw");
        }
        else
        {
            QemuImg.Create("qed", image, "4M", options.Length > 0 ? options : null);
        }

        var recorder = new CrashRecorder();
        var registry = Block.Drivers.DriverRegistry.CreateDefault().AddFormats();
        registry.Add(new CrashRecorderDriver(recorder));
        var random = new Random(withBacking ? 5 : options.Length);
        using (var graph = new TestGraph(new BlockGraph(new BlockGraphOptions { Drivers = registry, ReferencePolicy = ImageReferencePolicy.Allow })))
        {
            var options2 = new BlockdevOptionsGenericCowFormat("qed") { File = new BlockdevOptionsCrashRecorder(new BlockdevOptionsFile { Filename = image }) };
            var backend = OpenBackend(graph, options2);
            int prefixes = 0;
            for (int step = 0; step < 12; step++)
            {
                long offset = random.NextInt64(size - 1);
                int length = (int)Math.Min(size - offset, random.Next(1, 200_000));
                var data = Patterns.Random(length, step);
                BlockIo.Write(backend, offset, data);
                data.CopyTo(expected, offset);
                // The writes since the last flush (with a backing file, QEMU flushes the data before each L2 update).
                int pending = recorder.PendingCount;
                for (int count = 0; count <= pending; count++, prefixes++)
                {
                    string crashed = dir.File($"crash{count}.qed");
                    File.WriteAllBytes(crashed, recorder.Prefix(count));
                    var check = QemuImg.Check(crashed, "qed");
                    Assert.True(check.ExitCode is 0 or 3, $"step {step} prefix {count}: {check.Stdout}{check.Stderr}");
                    Images.BlkIo(crashed, "qed", "read 0 4M");
                    check = QemuImg.Check(crashed, "qed");
                    Assert.True(check.ExitCode is 0 or 3, $"step {step} prefix {count} after a writable open: {check.Stdout}{check.Stderr}");
                    File.Delete(crashed);
                }
            }
            Assert.True(prefixes > 12, $"only {prefixes} prefixes were tried");
        }
        Assert.Equal(expected, Images.QemuRaw(dir, image, "qed"));
        Images.AssertCheckClean(image, "qed");
    }
}
