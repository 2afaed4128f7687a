using Block.Qapi;

namespace Block.Formats.Tests.Vhdx;

/// <summary><see cref="FormatModel"/> runs on dynamic and fixed images with 1 MiB blocks, on both engines.</summary>
public class VhdxModelTests
{
    private static readonly FormatModel s_model = new("vhdx", "vhdx", Size: (4 << 20) + (1 << 19), BlockSize: 1 << 20);

    public static TheoryData<string, BlockdevAioOptions> Setups() => new()
    {
        { "block_size=1M", BlockdevAioOptions.Inline },
        { "block_size=1M,block_state_zero=off", BlockdevAioOptions.Threads },
        { "block_size=1M,subformat=fixed", BlockdevAioOptions.Threads },
    };

    [Theory]
    [MemberData(nameof(Setups))]
    public void Random_request_sequences_read_back_as_the_byte_model(string options, BlockdevAioOptions aio) =>
        s_model.Check(options, aio);
}
