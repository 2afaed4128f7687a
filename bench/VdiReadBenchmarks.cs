using Block.Formats;

namespace Block.Bench;

/// <summary>
/// <see cref="FormatReadBenchmarks"/> on a dynamic VDI. The block map is in memory from the open, so a read inside
/// one 1 MiB block is one map lookup and one <c>pread</c>, with nothing allocated.
/// </summary>
public class VdiReadBenchmarks : FormatReadBenchmarks
{
    private static readonly FormatBenchImage s_image = new("vdi", "blk-bench-1g.vdi", r => r.AddFormats());

    private protected override FormatBenchImage Image => s_image;
}
