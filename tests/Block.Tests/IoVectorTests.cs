using Block.Io;

namespace Block.Tests;

public class IoVectorTests
{
    private static IoVector ThreeSegments(out byte[] a, out byte[] b, out byte[] c)
    {
        a = [1, 2, 3];
        b = [4, 5];
        c = [6, 7, 8, 9];
        return new IoVector(new Memory<byte>[] { a, b, c });
    }

    [Fact]
    public void Length_is_the_sum_of_the_segments()
    {
        var v = ThreeSegments(out _, out _, out _);
        Assert.Equal(9, v.Length);
        Assert.Equal(3, v.SegmentCount);
        Assert.False(v.IsSingleSegment);
    }

    [Fact]
    public void Slice_across_segment_boundaries_keeps_the_bytes_in_order()
    {
        var v = ThreeSegments(out _, out _, out _);
        Assert.Equal(new byte[] { 3, 4, 5, 6 }, v.Slice(2, 4).ToArray());
        Assert.Equal(new byte[] { 5, 6, 7, 8, 9 }, v.Slice(4).ToArray());
        Assert.Empty(v.Slice(9, 0).ToArray());
    }

    [Fact]
    public void CopyFrom_writes_through_to_every_segment()
    {
        var v = ThreeSegments(out var a, out var b, out var c);
        v.Slice(1, 6).CopyFrom(new byte[] { 10, 11, 12, 13, 14, 15 });
        Assert.Equal(new byte[] { 1, 10, 11 }, a);
        Assert.Equal(new byte[] { 12, 13 }, b);
        Assert.Equal(new byte[] { 14, 15, 8, 9 }, c);
    }

    [Fact]
    public void IsZero_sees_a_single_nonzero_byte_in_any_segment()
    {
        var zero = new IoVector(new Memory<byte>[] { new byte[100], new byte[50] });
        Assert.True(zero.IsZero());
        var arr = new byte[50];
        arr[49] = 1;
        Assert.False(new IoVector(new Memory<byte>[] { new byte[100], arr }).IsZero());
        Assert.True(new IoVector(new Memory<byte>[] { new byte[100], arr }).Slice(0, 149).IsZero());
    }

    [Fact]
    public void Slice_out_of_range_throws()
    {
        var v = ThreeSegments(out _, out _, out _);
        Assert.Throws<ArgumentOutOfRangeException>(() => v.Slice(5, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => v.Slice(-1, 2));
    }

    [Fact]
    public void Empty_segments_are_skipped_by_the_enumerator()
    {
        var v = new IoVector(new Memory<byte>[] { Array.Empty<byte>(), new byte[] { 1 }, Array.Empty<byte>(), new byte[] { 2 } });
        var seen = new List<int>();
        foreach (var s in v)
            seen.Add(s.Length);
        Assert.Equal(new[] { 1, 1 }, seen);
        Assert.Equal(new byte[] { 1, 2 }, v.ToArray());
    }
}
