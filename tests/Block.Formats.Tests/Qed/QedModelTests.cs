using Block.Qapi;

namespace Block.Formats.Tests.Qed;

/// <summary>
/// <see cref="FormatModel"/> runs in two geometries (4 KiB clusters cross L2 tables too) and over a raw backing file
/// shorter than the disk, on both engines.
/// </summary>
public class QedModelTests
{
    private static readonly FormatModel s_model = new("qed", "qed", Size: (4 << 20) + (1 << 19), BlockSize: 1 << 20);

    public static TheoryData<string, BlockdevAioOptions> Setups() => new()
    {
        { "cluster_size=65536", BlockdevAioOptions.Inline },
        { "cluster_size=4096,table_size=2", BlockdevAioOptions.Threads },
        { "cluster_size=16384,backing_file=base.raw,backing_fmt=raw", BlockdevAioOptions.Threads },
    };

    [Theory]
    [MemberData(nameof(Setups))]
    public void Random_request_sequences_read_back_as_the_byte_model(string options, BlockdevAioOptions aio) =>
        s_model.Check(options, aio, options.Contains("backing_file", StringComparison.Ordinal) ? "base.raw" : null);
}
