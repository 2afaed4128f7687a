using Block.Formats;

namespace Block.Bench;

/// <summary>
/// <see cref="FormatReadBenchmarks"/> on a dynamic VHDX with the block size qemu-img picks at 1 GiB (32 MiB). The BAT
/// is in memory from the open, so a read inside one payload block is one entry lookup and one <c>pread</c>, with
/// nothing allocated.
/// </summary>
public class VhdxReadBenchmarks : FormatReadBenchmarks
{
    private static readonly FormatBenchImage s_image = new("vhdx", "blk-bench-1g.vhdx", r => r.AddFormats());

    private protected override FormatBenchImage Image => s_image;
}
