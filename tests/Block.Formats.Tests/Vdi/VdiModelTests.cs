using Block.Qapi;

namespace Block.Formats.Tests.Vdi;

/// <summary><see cref="FormatModel"/> runs on dynamic and static images, on both engines.</summary>
public class VdiModelTests
{
    private static readonly FormatModel s_model = new("vdi", "vdi", Size: (4 << 20) + (1 << 19), BlockSize: 1 << 20);

    public static TheoryData<string, BlockdevAioOptions> Setups() => new()
    {
        { "static=off", BlockdevAioOptions.Inline },
        { "static=off", BlockdevAioOptions.Threads },
        { "static=on", BlockdevAioOptions.Threads },
    };

    [Theory]
    [MemberData(nameof(Setups))]
    public void Random_request_sequences_read_back_as_the_byte_model(string options, BlockdevAioOptions aio) =>
        s_model.Check(options, aio);
}
