using Block.Formats;

namespace Block.Bench;

/// <summary>
/// <see cref="FormatReadBenchmarks"/> on a QED image with the default geometry (64 KiB clusters, 256 KiB tables). The
/// L2 tables are in memory after their first use, so a read inside one cluster is one table lookup and one
/// <c>pread</c>, with nothing allocated.
/// </summary>
public class QedReadBenchmarks : FormatReadBenchmarks
{
    private static readonly FormatBenchImage s_image = new("qed", "blk-bench-1g.qed", r => r.AddFormats());

    private protected override FormatBenchImage Image => s_image;
}
