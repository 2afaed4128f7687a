using Block.Qapi;

namespace Block.Formats.Tests.Parallels;

/// <summary><see cref="FormatModel"/> runs in three cluster sizes (one not a power of two), on both engines.</summary>
public class ParallelsModelTests
{
    public static TheoryData<string, int, BlockdevAioOptions> Setups() => new()
    {
        { "cluster_size=1M", 1 << 20, BlockdevAioOptions.Inline },
        { "cluster_size=64k", 64 << 10, BlockdevAioOptions.Threads },
        { "cluster_size=1536", 1536, BlockdevAioOptions.Threads },
    };

    [Theory]
    [MemberData(nameof(Setups))]
    public void Random_request_sequences_read_back_as_the_byte_model(string options, int clusterSize, BlockdevAioOptions aio) =>
        new FormatModel("parallels", "prl", Size: (4 << 20) + (1 << 19), BlockSize: clusterSize).Check(options, aio);
}
