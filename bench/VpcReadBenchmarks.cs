using Block.Formats;

namespace Block.Bench;

/// <summary>
/// <see cref="FormatReadBenchmarks"/> on a dynamic VHD (2 MiB blocks). The BAT is in memory from the open, so a read
/// inside one block is one entry lookup and one <c>pread</c>, with nothing allocated.
/// </summary>
public class VpcReadBenchmarks : FormatReadBenchmarks
{
    private static readonly FormatBenchImage s_image = new("vpc", "blk-bench-1g.vhd", r => r.AddFormats());

    private protected override FormatBenchImage Image => s_image;
}
