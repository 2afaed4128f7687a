using Block.Bitmaps;
using Block.Drivers.Null;
using Block.Graph;
using Block.Qapi;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Tests;

/// <summary>The core dirty bitmap: bits per granularity group, merge, resize, the qcow2 serialized form, and marking by the request path.</summary>
public class DirtyBitmapTests
{
    [Fact]
    public void Setting_a_range_marks_every_group_it_touches_and_count_is_whole_groups()
    {
        var b = new DirtyBitmap("b", 1 << 20, 65536);
        b.SetDirty(65535, 2);
        Assert.True(b.IsDirty(0));
        Assert.True(b.IsDirty(65536 + 100));
        Assert.False(b.IsDirty(131072));
        Assert.Equal(131072, b.Count);
        Assert.Equal([(0L, 131072L)], b.DirtyRanges());
    }

    [Fact]
    public void A_partial_reset_clears_the_whole_group()
    {
        var b = new DirtyBitmap("b", 1 << 20, 4096);
        b.SetDirty(0, 16384);
        b.ResetDirty(4097, 1);
        Assert.Equal([(0L, 4096L), (8192L, 8192L)], b.DirtyRanges());
    }

    [Fact]
    public void The_last_partial_group_counts_in_full_and_ranges_stop_at_the_length()
    {
        var b = new DirtyBitmap("b", 100_000, 65536);
        b.SetDirty(99_999, 1);
        Assert.Equal(65536, b.Count);
        Assert.Equal([(65536L, 100_000L - 65536)], b.DirtyRanges());
        Assert.Equal(2, b.BitCount);
    }

    [Fact]
    public void Ranges_outside_the_bitmap_change_nothing()
    {
        var b = new DirtyBitmap("b", 1 << 20, 512);
        b.SetDirty(1 << 20, 512);
        b.SetDirty(-512, 512);
        b.SetDirty(0, 0);
        Assert.Equal(0, b.Count);
        Assert.Equal(-1, b.NextDirty(0));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(256)]
    [InlineData(1000)]
    [InlineData(3 << 10)]
    public void A_granularity_that_is_not_a_power_of_two_of_at_least_512_is_refused(long granularity)
    {
        var e = Assert.Throws<BlockException>(() => new DirtyBitmap("b", 1 << 20, granularity));
        Assert.Equal("Granularity must be power of 2 and at least 512", e.Message);
    }

    [Fact]
    public void A_bitmap_with_too_many_bits_is_refused_instead_of_allocated()
    {
        var e = Assert.Throws<BlockException>(() => new DirtyBitmap("b", long.MaxValue, 512));
        Assert.Equal(Errno.ENOMEM, e.Errno);
    }

    [Fact]
    public void An_empty_bitmap_of_a_huge_disk_costs_only_its_page_directory()
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var b = new DirtyBitmap("b", 1L << 50, 1L << 20);
        b.SetDirty((1L << 50) - 1, 1);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1 << 20, $"{allocated} bytes");
        Assert.Equal((1L << 50) - (1L << 20), b.NextDirty(0));
    }

    [Fact]
    public void Merging_ors_groups_across_granularities()
    {
        var fine = new DirtyBitmap("fine", 1 << 20, 512);
        fine.SetDirty(0, 1024);
        fine.SetDirty(262144 + 1000, 3072);
        var coarse = new DirtyBitmap("coarse", 1 << 20, 65536);
        coarse.SetDirty(196608, 1);
        coarse.Merge(fine);
        Assert.Equal([(0L, 65536L), (196608L, 131072L)], coarse.DirtyRanges());
    }

    [Fact]
    public void Merging_bitmaps_of_different_lengths_is_refused_with_QEMUs_message()
    {
        var a = new DirtyBitmap("a", 32 << 20, 65536);
        var b = new DirtyBitmap("b", 64 << 20, 65536);
        var e = Assert.Throws<BlockException>(() => a.Merge(b));
        Assert.Equal("Bitmaps are of different sizes (destination size is 33554432, source size is 67108864) and can't be merged", e.Message);
    }

    [Fact]
    public void Shrinking_drops_groups_past_the_end_and_growing_again_finds_them_clean()
    {
        var b = new DirtyBitmap("b", 1 << 20, 512);
        b.SetDirty(0, 1 << 20);
        b.Resize(1000);
        Assert.Equal(1024, b.Count);
        b.Resize(1 << 20);
        Assert.Equal([(0L, 1024L)], b.DirtyRanges());
    }

    [Fact]
    public void The_serialized_form_is_lsb_first_bytes_with_clean_tail_bits()
    {
        var b = new DirtyBitmap("b", 20 * 512, 512);
        b.SetDirty(0, 512);
        b.SetDirty(9 * 512, 512);
        b.SetDirty(19 * 512, 512);
        var bytes = new byte[16];
        b.Serialize(0, bytes);
        Assert.Equal("010208000000000000000000000000", Convert.ToHexString(bytes)[..30]);
        Assert.Equal(3, b.SerializedLength);
        Assert.False(b.IsSerializedRangeClean(0, 3));
        Assert.True(b.IsSerializedRangeClean(8, 8));
    }

    [Fact]
    public void Deserializing_ignores_set_bits_past_the_end_and_ones_fill_only_the_bitmap()
    {
        var b = new DirtyBitmap("b", 20 * 512, 512);
        b.Deserialize(0, [0x00, 0x00, 0xff, 0xff]);
        Assert.Equal(4 * 512, b.Count);
        b.Clear();
        b.DeserializeOnes(0, 65536);
        Assert.Equal(20 * 512, b.Count);
    }

    [Fact]
    public void Serialize_and_deserialize_round_trip_across_pages()
    {
        var random = new Random(7);
        var b = new DirtyBitmap("b", 1L << 36, 512);
        for (int i = 0; i < 200; i++)
            b.SetDirty(random.NextInt64(1L << 36), random.Next(1, 1 << 20));
        var copy = new DirtyBitmap("c", 1L << 36, 512);
        var chunk = new byte[65536];
        for (long at = 0; at < b.SerializedLength; at += chunk.Length)
        {
            int n = (int)Math.Min(chunk.Length, b.SerializedLength - at);
            if (b.IsSerializedRangeClean(at, n))
                continue;
            b.Serialize(at, chunk.AsSpan(0, n));
            copy.Deserialize(at, chunk.AsSpan(0, n));
        }
        Assert.Equal(b.DirtyRanges(), copy.DirtyRanges());
    }

    [Fact]
    public void Random_set_and_reset_sequences_agree_with_a_group_model()
    {
        const long length = 300_000;
        var ops = from o in Gen.Choose(0, (int)length) from l in Gen.Choose(0, 70_000) from set in Gen.Elements(true, false) select (o, l, set);
        var property = Prop.ForAll(Gen.ListOf(ops, 30).ToArbitrary(), sequence =>
        {
            var b = new DirtyBitmap("b", length, 4096);
            var model = new bool[(length + 4095) / 4096];
            foreach (var (offset, bytes, set) in sequence)
            {
                if (set)
                    b.SetDirty(offset, bytes);
                else
                    b.ResetDirty(offset, bytes);
                if (bytes == 0 || offset >= length)
                    continue;
                long end = Math.Min(length, (long)offset + bytes);
                for (long g = offset / 4096; g <= (end - 1) / 4096; g++)
                    model[g] = set;
            }
            for (int g = 0; g < model.Length; g++)
                Assert.Equal(model[g], b.IsDirty(g * 4096L));
            Assert.Equal(model.Count(x => x) * 4096L, b.Count);
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(100), property);
    }

    [Fact]
    public async Task Writes_zeroes_and_discards_mark_recording_bitmaps_only()
    {
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(new BlockdevOptionsNull { NodeName = "n", Size = 1 << 20, Discard = BlockdevDiscardOptions.Unmap });
        var on = await node.AddDirtyBitmapAsync("on", 4096);
        var off = await node.AddDirtyBitmapAsync("off", 4096, disabled: true);
        await node.WriteAsync(100, new byte[10]);
        await node.WriteZeroesAsync(65536, 4096);
        await node.DiscardAsync(131072 + 1, 10);
        Assert.Equal([(0L, 4096L), (65536L, 4096L), (131072L, 4096L)], on.DirtyRanges());
        Assert.Equal(0, off.Count);
    }

    [Fact]
    public async Task Discards_ignored_by_the_node_do_not_mark()
    {
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(new BlockdevOptionsNull { NodeName = "n", Size = 1 << 20 });
        var b = await node.AddDirtyBitmapAsync("b");
        await node.DiscardAsync(0, 65536);
        Assert.Equal(0, b.Count);
        Assert.Equal(65536, b.Granularity);
    }

    [Fact]
    public async Task Node_operations_check_names_and_states_with_QEMUs_messages()
    {
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(new BlockdevOptionsNull { NodeName = "n", Size = 1 << 20 });
        Assert.Equal("Bitmap name cannot be empty", (await Assert.ThrowsAsync<BlockException>(() => node.AddDirtyBitmapAsync("").AsTask())).Message);
        Assert.Equal("Granularity must be power of 2 and at least 512",
            (await Assert.ThrowsAsync<BlockException>(() => node.AddDirtyBitmapAsync("x", 1000).AsTask())).Message);
        Assert.Equal($"Can't store persistent bitmaps to n: Operation not supported",
            (await Assert.ThrowsAsync<BlockException>(() => node.AddDirtyBitmapAsync("x", persistent: true).AsTask())).Message);
        var b = await node.AddDirtyBitmapAsync("b");
        Assert.Equal("Bitmap already exists: b", (await Assert.ThrowsAsync<BlockException>(() => node.AddDirtyBitmapAsync("b").AsTask())).Message);
        Assert.Equal("Dirty bitmap 'x' not found", Assert.Throws<BlockException>(() => node.ClearDirtyBitmap("x")).Message);
        b.Busy = true;
        Assert.Equal("Bitmap 'b' is currently in use by another operation and cannot be used",
            Assert.Throws<BlockException>(() => node.DisableDirtyBitmap("b")).Message);
        b.Busy = false;
        b.ReadOnly = true;
        Assert.Equal("Bitmap 'b' is readonly and cannot be modified", Assert.Throws<BlockException>(() => node.ClearDirtyBitmap("b")).Message);
        node.DisableDirtyBitmap("b");
        Assert.False(b.Enabled);

        var stale = new DirtyBitmap("stale", node.Length, 65536) { Inconsistent = true };
        node.AttachDirtyBitmap(stale);
        Assert.Equal("Bitmap 'stale' is inconsistent and cannot be used\nTry block-dirty-bitmap-remove to delete this bitmap from disk",
            Assert.Throws<BlockException>(() => node.EnableDirtyBitmap("stale")).Message);
        await node.RemoveDirtyBitmapAsync("stale");
        Assert.Null(node.FindDirtyBitmap("stale"));
    }

    [Fact]
    public async Task Merge_changes_nothing_unless_every_source_merges()
    {
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(new BlockdevOptionsNull { NodeName = "n", Size = 1 << 20 });
        var other = await graph.AddNodeAsync(new BlockdevOptionsNull { NodeName = "o", Size = 2 << 20 });
        var target = await node.AddDirtyBitmapAsync("t", 65536, disabled: true);
        var source = await node.AddDirtyBitmapAsync("s", 512, disabled: true);
        await other.AddDirtyBitmapAsync("big");
        source.SetDirty(70000, 1);
        var e = Assert.Throws<BlockException>(() => node.MergeDirtyBitmaps("t", [(node, "s"), (other, "big")]));
        Assert.StartsWith("Bitmaps are of different sizes", e.Message);
        Assert.Equal(0, target.Count);
        node.MergeDirtyBitmaps("t", [(node, "s")]);
        Assert.Equal([(65536L, 65536L)], target.DirtyRanges());
    }

    [Fact]
    public async Task Query_block_lists_the_root_bitmaps()
    {
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsNull { Size = 1 << 20 }, new BlockBackendOptions { Name = "d0" });
        var b = await backend.Root!.AddDirtyBitmapAsync("b0", 512);
        await backend.WriteAsync(0, new byte[1024]);
        var info = Assert.Single(Assert.Single(graph.QueryBlock()).DirtyBitmaps!);
        Assert.Equal("b0", info.Name);
        Assert.Equal(1024, info.Count);
        Assert.Equal(DirtyBitmapStatus.Active, info.Status);
        Assert.Equal(1024, b.Count);
    }

    [Fact]
    public async Task Resizing_the_node_resizes_its_bitmaps()
    {
        await using var graph = new BlockGraph();
        using var dir = new TestSupport.TempDirectory();
        string path = dir.File("x.raw");
        File.WriteAllBytes(path, new byte[1 << 20]);
        var node = await graph.AddNodeAsync(new Drivers.File.BlockdevOptionsFile { NodeName = "f", Filename = path });
        var b = await node.AddDirtyBitmapAsync("b", 65536);
        await node.TruncateAsync(2 << 20);
        Assert.Equal(2 << 20, b.Length);
        await node.WriteAsync((2 << 20) - 1, new byte[1]);
        Assert.Equal([((2L << 20) - 65536, 65536L)], b.DirtyRanges());
    }
}
