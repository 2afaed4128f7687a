using Block.Formats;

namespace Block.Bench;

/// <summary>
/// <see cref="FormatReadBenchmarks"/> on a Parallels image of 1 MiB clusters. The BAT is in memory from the open, so
/// a read inside one cluster is one entry lookup and one <c>pread</c>, with nothing allocated.
/// </summary>
public class ParallelsReadBenchmarks : FormatReadBenchmarks
{
    private static readonly FormatBenchImage s_image = new("parallels", "blk-bench-1g.prl", r => r.AddFormats());

    private protected override FormatBenchImage Image => s_image;
}
