using Block.Iscsi.Session;

namespace Block.Iscsi.Tests;

/// <summary>The LUN's VPD pages turned into the node's request limits, as QEMU reads them.</summary>
public sealed class IscsiLimitsTests
{
    [Fact]
    public void Block_limits_page_sets_transfer_discard_and_zero_limits()
    {
        var info = new IscsiLunInfo { BlockSize = 4096, Blocks = 1000 };
        var page = new byte[64];
        page[1] = 0xB0;
        page[3] = 0x3c;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(page.AsSpan(8), 256);    // max transfer: 1 MiB
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(page.AsSpan(12), 64);    // optimal: 256 KiB
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(page.AsSpan(20), 2048);  // max unmap: 8 MiB
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(page.AsSpan(28), 16);    // unmap granularity: 64 KiB
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(page.AsSpan(36), 4096);  // max write same: 16 MiB
        info.ApplyBlockLimits(page);
        var limits = IscsiNodeDriver.LimitsOf(info);
        Assert.Equal(4096, limits.RequestAlignment);
        Assert.Equal(1 << 20, limits.MaxTransfer);
        Assert.Equal(256 << 10, limits.OptimalTransfer);
        Assert.Equal(8L << 20, limits.MaxDiscard);
        Assert.Equal(64 << 10, limits.DiscardAlignment);
        Assert.Equal(64 << 10, limits.WriteZeroesAlignment);
        Assert.Equal(16L << 20, limits.MaxWriteZeroes);
    }

    [Fact]
    public void Provisioning_page_and_read_capacity_set_the_unmap_and_zero_bits()
    {
        var capacity = new byte[32];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(capacity, 131071);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(capacity.AsSpan(8), 512);
        capacity[14] = 0xC0;
        var info = IscsiLunInfo.FromReadCapacity16(capacity);
        Assert.Equal(64L << 20, info.Length);
        Assert.True(info.Lbpme);
        Assert.True(info.Lbprz);
        info.ApplyProvisioning([0, 0xB2, 0, 4, 0, 0xC0, 0, 0]);
        Assert.True(info.Lbpu);
        Assert.True(info.Lbpws);
        Assert.True(IscsiLunInfo.ListsPage([0, 0, 0, 3, 0x00, 0xB0, 0xB2], 0xB2));
        Assert.False(IscsiLunInfo.ListsPage([0, 0, 0, 1, 0x00, 0xB0, 0xB2], 0xB2));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(513u)]
    [InlineData(1u << 20)]
    public void Impossible_block_sizes_are_refused(uint blockSize)
    {
        var capacity = new byte[32];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(capacity.AsSpan(8), blockSize);
        Assert.Throws<BlockException>(() => IscsiLunInfo.FromReadCapacity16(capacity));
    }
}
