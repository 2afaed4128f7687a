using Block.Drivers;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Damaged tables that QEMU opens and <c>qemu-img check</c> diagnoses: the library's check finds the same numbers of
/// corruptions and leaks, repairs what <c>-r all</c> repairs, and never reads or allocates by a size or offset the
/// image made up.
/// </summary>
public class DamagedMetadataTests
{
    private const long RefcountTable = 0x10000, RefcountBlock = 0x20000, L1Table = 0x30000, L2Table = 0x40000;
    private const ulong Copied = 1UL << 63;

    /// <summary>The library's check of <paramref name="path"/> (read-only unless repairing), with its log.</summary>
    private static async Task<(Qapi.ImageCheck Result, string Log)> LibraryCheckAsync(string path, CheckRepair repair = CheckRepair.None)
    {
        await using var graph = Qcow2Images.NewGraph();
        var log = new StringWriter();
        Qapi.ImageCheck? result = null;
        var refusal = await Hostile.RunAsync(async () =>
        {
            var backend = await Qcow2Images.OpenAsync(graph, path, readOnly: repair == CheckRepair.None);
            result = await backend.Root!.Impl.CheckAsync(repair, log);
        });
        Assert.True(refusal is null, $"the library's check failed: {refusal?.Message}\n{log}");
        return (result!, log.ToString());
    }

    /// <summary>The library's check counts what qemu-img check counts.</summary>
    private static async Task<string> AssertCheckAgreesWithQemuAsync(string path)
    {
        var qemu = Qcow2Images.CheckJson(path);
        var (result, log) = await LibraryCheckAsync(path);
        long corruptions = (long?)qemu["corruptions"] ?? 0, leaks = (long?)qemu["leaks"] ?? 0;
        Assert.True(corruptions == (result.Corruptions ?? 0) && leaks == (result.Leaks ?? 0),
            $"qemu-img check: {qemu["corruptions"]} corruptions, {qemu["leaks"]} leaks; the library: {result.Corruptions} corruptions, {result.Leaks} leaks\n{log}");
        return log;
    }

    public static TheoryData<string, string?, long, ulong> FarReferences() => new()
    {
        { "data cluster 64 TiB into a 400 KiB file", null, L2Table, Copied | 0x4000_0000_0000 },
        { "L2 table 64 TiB into a 400 KiB file", null, L1Table, Copied | 0x4000_0000_0000 },
        { "data cluster at the top of the offset field", null, L2Table, Copied | 0x00ff_ffff_ffff_0000 },
        { "data cluster 2^31 clusters out, 512-byte clusters", "cluster_size=512", 0x1200, Copied | (1UL << 40) },
    };

    [Theory]
    [MemberData(nameof(FarReferences))]
    public async Task A_reference_far_past_the_end_of_the_file_is_counted_by_check_without_allocating_for_it(string what, string? options, long at, ulong entry)
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir, options: options);
        if (options != null)
        {
            // 512-byte clusters: find the L2 table through the L1 table.
            long l1 = (long)ImageFile.PeekBe64(path, ImageFile.L1TableOffset);
            at = (long)(ImageFile.PeekBe64(path, l1) & 0x00ff_ffff_ffff_fe00);
        }
        ImageFile.PokeBe64(path, at, entry);
        string log = await AssertCheckAgreesWithQemuAsync(path);
        Assert.True(log.Length < 100_000, $"{what}: {log.Length} characters of check output");

        // Reading may fail (qemu reads zeroes past the end of the file) but must stay bounded.
        await using var graph = Qcow2Images.NewGraph();
        await Hostile.RunAsync(async () => await Qcow2Images.ReadAllAsync(await Qcow2Images.OpenAsync(graph, path, readOnly: true)));
    }

    [Fact]
    public async Task A_used_cluster_with_refcount_0_is_found_by_check_and_repaired_by_rebuilding_refcounts()
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        ImageFile.PokeBe16(path, RefcountBlock + 5 * 2, 0);
        string log = await AssertCheckAgreesWithQemuAsync(path);
        Assert.Contains("ERROR cluster 5 refcount=0 reference=1", log);

        var (repaired, _) = await LibraryCheckAsync(path, CheckRepair.All);
        Assert.Equal(0, repaired.Corruptions);
        Qcow2Images.AssertCheckClean(path);
        Assert.Equal(Patterns.Fill(512, 0x2a), Qcow2Images.ReadWithQemu(path)[..512]);
    }

    [Fact]
    public async Task A_refcount_block_past_the_end_of_the_file_is_diagnosed_and_never_lets_the_header_be_overwritten()
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        ImageFile.PokeBe64(path, RefcountTable, 0x1000_0000_0000);
        string log = await AssertCheckAgreesWithQemuAsync(path);
        Assert.Contains("refcount block 0 is outside image", log);

        byte[] header = ImageFile.Peek(path, 0, 512);
        await using (var graph = Qcow2Images.NewGraph())
        {
            await Hostile.RunAsync(async () =>
            {
                var backend = await Qcow2Images.OpenAsync(graph, path);
                await backend.WriteAsync(1 << 20, Patterns.Fill(512, 0x11));
                await backend.FlushAsync();
            });
        }
        // qemu marks the image corrupt here (its allocator hands out cluster 0); either way the header survives.
        byte[] after = ImageFile.Peek(path, 0, 512);
        after.AsSpan(ImageFile.IncompatibleFeatures, 8).Clear();
        header.AsSpan(ImageFile.IncompatibleFeatures, 8).Clear();
        Assert.Equal(header, after);
    }

    public static TheoryData<string, int, string> DamagedSnapshots() => new()
    {
        { "snapshot L1 table of 2 GiB", 8, "10000000" },
        { "unaligned snapshot L1 table", 0, "0000000000050200" },
        { "snapshot L1 table past the end of the file", 0, "0000100000000000" },
    };

    [Theory]
    [MemberData(nameof(DamagedSnapshots))]
    public async Task A_damaged_snapshot_table_entry_still_opens_and_check_reports_it_as_qemu_does(string what, int field, string hex)
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        QemuImg.Run("snapshot", "-c", "s1", path).EnsureSuccess("qemu-img snapshot");
        long table = (long)ImageFile.PeekBe64(path, ImageFile.SnapshotsOffset);
        ImageFile.PokeHex(path, table + field, hex);

        Assert.Equal(Patterns.Fill(512, 0x2a), (await Qcow2Images.ReadWithLibraryAsync(path))[..512]);
        string log = await AssertCheckAgreesWithQemuAsync(path);
        Assert.True(QemuImg.Check(path, "qcow2").Stderr == log, $"{what}: the check's findings differ from qemu-img's:\n{log}");
    }

    [Fact]
    public async Task Too_much_extra_data_in_a_snapshot_entry_is_refused_as_qemu_refuses_it()
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        QemuImg.Run("snapshot", "-c", "s1", path).EnsureSuccess("qemu-img snapshot");
        long table = (long)ImageFile.PeekBe64(path, ImageFile.SnapshotsOffset);
        ImageFile.PokeBe32(path, table + 36, 0x10000);
        const string message = "Too much extra metadata in snapshot table entry 0";
        Assert.Contains(message, QemuIo.Run(path, "qcow2", "read 0 512").Stderr);
        await using var graph = Qcow2Images.NewGraph();
        var e = await Hostile.RefusedAsync(() => Qcow2Images.OpenAsync(graph, path, readOnly: true).AsTask());
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public async Task A_snapshot_count_the_table_cannot_hold_is_refused_without_reading_unbounded_data()
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        QemuImg.Run("snapshot", "-c", "s1", path).EnsureSuccess("qemu-img snapshot");
        ImageFile.PokeBe32(path, ImageFile.NbSnapshots, 65536);
        await using var graph = Qcow2Images.NewGraph();
        // qemu reads zeroes past the end of the file and takes them for entries; the library refuses the table.
        var e = await Hostile.RefusedAsync(() => Qcow2Images.OpenAsync(graph, path, readOnly: true).AsTask());
        Assert.Contains("Snapshot table", e.Message, StringComparison.OrdinalIgnoreCase);
    }
}
