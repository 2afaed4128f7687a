using Block.Drivers;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// The library API behind <c>blk amend</c> and <c>blk measure</c>: <see cref="NodeDriver.AmendAsync"/> on an open node
/// and <see cref="BlockDriver.MeasureAsync"/>, used without the command line.
/// </summary>
public class AmendAndMeasureTests
{
    [Fact]
    public async Task Amend_downgrades_an_open_image_reporting_progress_up_to_the_whole()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M", "cluster_size=4k");
        QemuIo.RunChecked(path, "qcow2", "write -P 7 0 1M", "write -z 1M 3M");
        var before = Qcow2Images.ReadWithQemu(path);

        var reports = new List<(long Done, long Total)>();
        await using (var graph = Qcow2Images.NewGraph())
        {
            var backend = await Qcow2Images.OpenAsync(graph, path);
            await backend.Root!.Impl.AmendAsync(new ImageAmendRequest(new Dictionary<string, string> { ["compat"] = "0.10" })
            {
                Progress = (done, total) => reports.Add((done, total)),
            }, CancellationToken.None);
        }

        Assert.Equal(2u, ImageFile.PeekBe32(path, ImageFile.Version));
        Qcow2Images.AssertCheckClean(path);
        Qcow2Images.AssertSameBytes(before, Qcow2Images.ReadWithQemu(path), "guest content");
        // One report per L1 entry of a 64 MiB disk of 4 KiB clusters (2 MiB per L2 table), ending at the total.
        Assert.Equal(32, reports.Count);
        Assert.Equal((32L, 32L), reports[^1]);
    }

    [Fact]
    public async Task Amend_refuses_what_version_2_cannot_hold_before_changing_anything()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M", "refcount_bits=8");
        var before = File.ReadAllBytes(path);
        await using var graph = Qcow2Images.NewGraph();
        var backend = await Qcow2Images.OpenAsync(graph, path);
        var e = await Assert.ThrowsAsync<BlockException>(() => backend.Root!.Impl.AmendAsync(
            new ImageAmendRequest(new Dictionary<string, string> { ["compat"] = "0.10" }), CancellationToken.None).AsTask());
        Assert.Equal("compat=0.10 requires refcount_bits=16", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    [Fact]
    public async Task Refcount_width_changes_keep_every_count_and_the_guest_content()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "16M", "cluster_size=512");
        QemuIo.RunChecked(path, "qcow2", "write -P 1 0 3M", "write -c -P 2 4M 64k");
        QemuImg.Run("snapshot", "-c", "s", path).EnsureSuccess("qemu-img snapshot");
        QemuIo.RunChecked(path, "qcow2", "write -P 3 1M 1M");
        var before = Qcow2Images.ReadWithQemu(path);
        foreach (var bits in new[] { "64", "8", "32", "16" })
        {
            await using (var graph = Qcow2Images.NewGraph())
            {
                var backend = await Qcow2Images.OpenAsync(graph, path);
                await backend.Root!.Impl.AmendAsync(new ImageAmendRequest(new Dictionary<string, string> { ["refcount_bits"] = bits }),
                    CancellationToken.None);
            }
            Assert.Equal((uint)System.Numerics.BitOperations.Log2(uint.Parse(bits, System.Globalization.CultureInfo.InvariantCulture)),
                ImageFile.PeekBe32(path, ImageFile.RefcountOrder));
            Qcow2Images.AssertCheckClean(path);
            Qcow2Images.AssertSameBytes(before, Qcow2Images.ReadWithQemu(path), $"guest content at {bits}-bit refcounts");
        }
    }

    [Fact]
    public async Task Refcount_width_too_narrow_for_a_shared_cluster_is_refused_naming_it()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "16M", "cluster_size=512");
        // 64 KiB of one byte compresses into a few bytes: the 128 compressed clusters share few host clusters.
        QemuIo.RunChecked(path, "qcow2", "write -c -P 2 0 64k");
        var before = File.ReadAllBytes(path);
        await using var graph = Qcow2Images.NewGraph();
        var backend = await Qcow2Images.OpenAsync(graph, path);
        var e = await Assert.ThrowsAsync<BlockException>(() => backend.Root!.Impl.AmendAsync(
            new ImageAmendRequest(new Dictionary<string, string> { ["refcount_bits"] = "4" }), CancellationToken.None).AsTask());
        Assert.Matches("^Cannot decrease refcount entry width to 4 bits: Cluster at offset 0x[0-9a-f]+ has a refcount of [0-9]+$", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    [Theory]
    [InlineData(0L, 16, 4, false, 196608L)]
    [InlineData(1L << 30, 16, 4, false, 1074135040L)]
    [InlineData(1L << 30, 12, 0, false, 1075888128L)]
    [InlineData(1L << 30, 16, 4, true, 1074266112L)]
    public void Fully_allocated_size_counts_header_tables_and_refcounts(long virtualSize, int clusterBits, int refcountOrder, bool extendedL2, long expected) =>
        Assert.Equal(expected, Qcow2Measure.FullyAllocatedSize(virtualSize, clusterBits, refcountOrder, extendedL2));

    [Fact]
    public async Task Measure_of_an_input_counts_its_data_clusters_and_bitmaps()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M");
        QemuIo.RunChecked(path, "qcow2", "write -P 1 0 4k", "write -P 1 1M 128k", "write -z 2M 1M");
        QemuImg.Run("bitmap", "--add", path, "b").EnsureSuccess("qemu-img bitmap");
        await using var graph = Qcow2Images.NewGraph();
        var input = await Qcow2Images.OpenAsync(graph, path, readOnly: true);
        var info = await new Qcow2Driver().MeasureAsync(new ImageCreateRequest(graph, string.Empty), input.Root, CancellationToken.None);
        // Five clusters of metadata for 64 MiB, plus three data clusters (one partly written, two whole).
        Assert.Equal(5 * 65536 + 3 * 65536, info.Required);
        Assert.Equal(67436544, info.FullyAllocated);
        // The bitmap's data cluster, its table cluster, and the directory cluster.
        Assert.Equal(3 * 65536, info.Bitmaps);
    }
}
