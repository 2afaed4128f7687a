using Block.Events;
using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Damaged metadata (iotest 060's ideas, poked into qemu-made images): a write that would land on metadata is refused
/// by the overlap check, the image is marked corrupt on disk and <c>BLOCK_IMAGE_CORRUPTED</c> is raised, as in QEMU;
/// a corrupt image then opens only read-only; entries QEMU calls invalid fail the request the same way.
/// </summary>
public class CorruptionTests
{
    // Offsets in HostileHeaderTests.MakeImage's image.
    private const long RefcountTable = 0x10000, RefcountBlock = 0x20000, L1Table = 0x30000, L2Table = 0x40000, DataCluster = 0x50000;
    private const ulong Copied = 1UL << 63;

    /// <summary>A library session on one image that records every event.</summary>
    private sealed class Session : IAsyncDisposable
    {
        private Session(BlockGraph graph, BlockBackend backend)
        {
            Graph = graph;
            Backend = backend;
        }

        public BlockGraph Graph { get; }

        public BlockBackend Backend { get; }

        public List<BlockImageCorruptedEvent> Corruptions { get; } = [];

        public static async Task<Session> OpenAsync(string path, bool readOnly = false, System.Text.Json.Nodes.JsonObject? options = null)
        {
            var graph = Qcow2Images.NewGraph();
            var events = new List<BlockImageCorruptedEvent>();
            graph.EventRaised += e =>
            {
                if (e is BlockImageCorruptedEvent c)
                {
                    lock (events)
                        events.Add(c);
                }
            };
            try
            {
                var backend = await graph.OpenImageAsync(path, new ImageOpenOptions
                {
                    Format = "qcow2",
                    ReadOnly = readOnly,
                    Discard = Qapi.BlockdevDiscardOptions.Unmap,
                    ExtraOptions = options,
                });
                var s = new Session(graph, backend);
                s.Corruptions.AddRange(events);
                graph.EventRaised += e =>
                {
                    if (e is BlockImageCorruptedEvent c)
                    {
                        lock (s.Corruptions)
                            s.Corruptions.Add(c);
                    }
                };
                return s;
            }
            catch
            {
                await graph.DisposeAsync();
                throw;
            }
        }

        public ValueTask DisposeAsync() => Graph.DisposeAsync();
    }

    private static bool CorruptBit(string path) => (ImageFile.PeekBe64(path, ImageFile.IncompatibleFeatures) & 2) != 0;

    private static bool QemuSaysCorrupt(string path) =>
        QemuImg.Info(path, "qcow2")["format-specific"]!["data"]!["corrupt"]!.GetValue<bool>();

    /// <summary>The image is corrupt on disk: qemu-img info says so, read-write opens are refused by both, read-only opens work.</summary>
    private static async Task AssertMarkedCorruptAsync(string path)
    {
        Assert.True(QemuSaysCorrupt(path), "qemu-img info does not report the image corrupt");
        var qemu = QemuIo.Run(path, "qcow2", "read 0 512");
        Assert.Contains("Image is corrupt; cannot be opened read/write", qemu.Stderr);
        await using var graph = Qcow2Images.NewGraph();
        var e = await Hostile.RefusedAsync(() => Qcow2Images.OpenAsync(graph, path).AsTask());
        Assert.Contains("Image is corrupt; cannot be opened read/write", e.Message);
        await using var readOnly = Qcow2Images.NewGraph();
        await Qcow2Images.OpenAsync(readOnly, path, readOnly: true);
    }

    public static TheoryData<string, long, string> DataClusterOnMetadata() => new()
    {
        { "refcount table", RefcountTable, "refcount table" },
        { "refcount block", RefcountBlock, "refcount block" },
        { "active L1 table", L1Table, "active L1 table" },
        { "active L2 table", L2Table, "active L2 table" },
    };

    [Theory]
    [MemberData(nameof(DataClusterOnMetadata))]
    public async Task A_data_cluster_on_metadata_is_not_written_and_the_image_is_marked_corrupt(string what, long target, string structure)
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        ImageFile.PokeBe64(path, L2Table, Copied | (ulong)target);
        string twin = dir.File("twin.qcow2");
        File.Copy(path, twin);
        byte[] metadataBefore = ImageFile.Peek(path, target, 65536);
        string expected = $"Preventing invalid write on metadata (overlaps with {structure})";

        await using (var s = await Session.OpenAsync(path))
        {
            var e = await Hostile.RefusedAsync(() => s.Backend.WriteAsync(0, Patterns.Fill(512, 0x3c)).AsTask());
            Assert.Equal(Errno.EIO, e.Errno);
            var corrupted = Assert.Single(s.Corruptions);
            Assert.Equal(expected, corrupted.Message);
            Assert.True(corrupted.Fatal);
            Assert.Equal(s.Backend.Root!.NodeName, corrupted.NodeName);
            // The node stays stopped: nothing more is read or written.
            await Hostile.RefusedAsync(() => s.Backend.ReadAsync(0, new byte[512]).AsTask());
        }
        Assert.Equal(metadataBefore[16..], ImageFile.Peek(path, target, 65536)[16..]);
        Assert.True(CorruptBit(path), $"{what}: the corrupt bit is not set");
        await AssertMarkedCorruptAsync(path);

        // qemu-io prints the same message for the same image.
        var qemu = QemuIo.Run(twin, "qcow2", "write -P 0x3c 0 512");
        Assert.Contains($"Marking image as corrupt: {expected}", qemu.Stderr);
        Assert.True(QemuSaysCorrupt(twin));
    }

    [Fact]
    public async Task Overlap_check_none_lets_the_write_through_and_marks_nothing()
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        ImageFile.PokeBe64(path, L2Table, Copied | RefcountTable);
        await using (var s = await Session.OpenAsync(path, options: new() { ["overlap-check"] = "none" }))
        {
            await s.Backend.WriteAsync(0, Patterns.Fill(512, 0x3c));
            Assert.Empty(s.Corruptions);
        }
        Assert.False(CorruptBit(path));
        Assert.Equal(Patterns.Fill(512, 0x3c), ImageFile.Peek(path, RefcountTable, 512));
    }

    [Fact]
    public async Task An_L1_entry_pointing_at_the_refcount_block_ends_in_a_corrupt_image_as_in_qemu()
    {
        // iotest 060's first case: the "L2 table" is the refcount block; updating it must never happen.
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        ImageFile.PokeBe64(path, L1Table, Copied | RefcountBlock);
        byte[] refblock = ImageFile.Peek(path, RefcountBlock, 65536);
        await using (var s = await Session.OpenAsync(path))
        {
            await Hostile.RunAsync(() => s.Backend.WriteAsync(0, Patterns.Fill(512, 0x2a)).AsTask());
            await Hostile.RunAsync(() => s.Backend.FlushAsync().AsTask());
            var corrupted = Assert.Single(s.Corruptions);
            Assert.StartsWith("Preventing invalid write on metadata (overlaps with ", corrupted.Message);
        }
        Assert.True(CorruptBit(path));
        await AssertMarkedCorruptAsync(path);
        // Whatever was refused, the refcount block still counts what it counted.
        Assert.Equal(refblock[..16], ImageFile.Peek(path, RefcountBlock, 16));
    }

    [Fact]
    public async Task A_free_L2_table_is_not_handed_out_as_a_data_cluster()
    {
        // Refcount 0 on the L2 table: the allocator would pick it for new data; the overlap check stops the write.
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        ImageFile.PokeBe16(path, RefcountBlock + 4 * 2, 0);
        var qemuCheck = QemuImg.Check(path, "qcow2");
        Assert.Equal(2, qemuCheck.ExitCode);
        Assert.Contains("ERROR cluster 4 refcount=0 reference=1", qemuCheck.Stdout + qemuCheck.Stderr);
        byte[] l2 = ImageFile.Peek(path, L2Table, 65536);

        await using (var s = await Session.OpenAsync(path))
        {
            var check = await s.Backend.Root!.Impl.CheckAsync(Drivers.CheckRepair.None);
            Assert.True(check.Corruptions >= 1, $"the library's check found {check.Corruptions} corruptions");
            var e = await Hostile.RefusedAsync(() => s.Backend.WriteAsync(64 * 1024, Patterns.Fill(512, 0x3b)).AsTask());
            Assert.Equal(Errno.EIO, e.Errno);
            Assert.Equal("Preventing invalid write on metadata (overlaps with active L2 table)", Assert.Single(s.Corruptions).Message);
        }
        Assert.Equal(l2, ImageFile.Peek(path, L2Table, 65536));
        await AssertMarkedCorruptAsync(path);
    }

    public static TheoryData<string, long> RefcountBlockOnMetadata() => new()
    {
        { "active L1 table", L1Table },
        { "refcount table", RefcountTable },
        { "active L2 table", L2Table },
    };

    [Theory]
    [MemberData(nameof(RefcountBlockOnMetadata))]
    public async Task A_refcount_block_on_other_metadata_is_never_updated_and_the_image_is_marked_corrupt(string what, long target)
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        ImageFile.PokeBe64(path, RefcountTable, (ulong)target);
        string twin = dir.File("twin.qcow2");
        File.Copy(path, twin);
        byte[] before = ImageFile.Peek(path, 0, 0x50000);

        await using (var s = await Session.OpenAsync(path))
        {
            await Hostile.RefusedAsync(async () =>
            {
                await s.Backend.WriteAsync(1 << 20, Patterns.Fill(512, 0x3c));
                await s.Backend.FlushAsync();
            });
            var corrupted = Assert.Single(s.Corruptions);
            Assert.StartsWith("Preventing invalid write on metadata (overlaps with ", corrupted.Message);
            Assert.True(corrupted.Fatal);
        }
        // Nothing but the corrupt bit changed in the metadata clusters.
        byte[] after = ImageFile.Peek(path, 0, 0x50000);
        Assert.True(CorruptBit(path), $"{what}: not marked corrupt");
        after.AsSpan(ImageFile.IncompatibleFeatures, 8).Clear();
        before.AsSpan(ImageFile.IncompatibleFeatures, 8).Clear();
        Assert.True(before.AsSpan().SequenceEqual(after), $"{what}: metadata changed at offset 0x{before.AsSpan().CommonPrefixLength(after):x}");
        await AssertMarkedCorruptAsync(path);

        Assert.Contains("Marking image as corrupt: Preventing invalid write on metadata", QemuIo.Run(twin, "qcow2", "write 1M 512").Stderr);
    }

    public static TheoryData<string, long, ulong, string> InvalidEntries() => new()
    {
        { "unaligned L2 table", L1Table, Copied | (L2Table + 0x2000), "L2 table offset 0x42000 unaligned (L1 index: 0)" },
        { "unaligned data cluster", L2Table, Copied | (DataCluster + 0x2000), "Cluster allocation offset 0x52000 unaligned (L2 offset: 0x40000, L2 index: 0)" },
    };

    [Theory]
    [MemberData(nameof(InvalidEntries))]
    public async Task An_unaligned_entry_fails_reads_and_marks_the_image_corrupt_only_when_writable(string what, long at, ulong entry, string message)
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        ImageFile.PokeBe64(path, at, entry);

        await using (var s = await Session.OpenAsync(path, readOnly: true))
        {
            var e = await Hostile.RefusedAsync(() => s.Backend.ReadAsync(0, new byte[512]).AsTask());
            Assert.Equal(Errno.EIO, e.Errno);
            var corrupted = Assert.Single(s.Corruptions);
            Assert.Equal(message, corrupted.Message);
            Assert.False(corrupted.Fatal);
        }
        Assert.False(CorruptBit(path), $"{what}: a read-only open marked the image corrupt");

        string twin = dir.File("twin.qcow2");
        File.Copy(path, twin);
        await using (var s = await Session.OpenAsync(path))
        {
            await Hostile.RefusedAsync(() => s.Backend.ReadAsync(0, new byte[512]).AsTask());
            var corrupted = Assert.Single(s.Corruptions);
            Assert.Equal(message, corrupted.Message);
            Assert.True(corrupted.Fatal);
        }
        await AssertMarkedCorruptAsync(path);
        var q = QemuIo.Run(twin, "qcow2", "read 0 512");
        Assert.Contains($"qcow2: Marking image as corrupt: {message}", q.Stderr);
    }
}
