using Block.Vmdk;

namespace Block.Bench;

/// <summary>
/// <see cref="FormatReadBenchmarks"/> on a monolithicSparse VMDK. The grain tables are in memory after the first
/// touch, so a read inside one grain is one <c>pread</c>.
/// </summary>
public class VmdkReadBenchmarks : FormatReadBenchmarks
{
    private static readonly FormatBenchImage s_image = new("vmdk", "blk-bench-1g-sparse.vmdk", r => r.AddVmdk());

    private protected override FormatBenchImage Image => s_image;
}
