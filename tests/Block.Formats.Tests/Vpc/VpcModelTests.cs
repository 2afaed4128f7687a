using Block.Qapi;

namespace Block.Formats.Tests.Vpc;

/// <summary><see cref="FormatModel"/> runs on dynamic and fixed images (an exact size, by force_size, of four and a half 2 MiB blocks), on both engines; qemu-img has no check for vpc, so it only reads the result.</summary>
public class VpcModelTests
{
    private static readonly FormatModel s_model = new("vpc", "vhd", Size: (9 << 20) + (1 << 19), BlockSize: 2 << 20, QemuChecks: false);

    public static TheoryData<string, BlockdevAioOptions> Setups() => new()
    {
        { "force_size=on", BlockdevAioOptions.Inline },
        { "force_size=on", BlockdevAioOptions.Threads },
        { "subformat=fixed,force_size=on", BlockdevAioOptions.Threads },
    };

    [Theory]
    [MemberData(nameof(Setups))]
    public void Random_request_sequences_read_back_as_the_byte_model(string options, BlockdevAioOptions aio) =>
        s_model.Check(options, aio);
}
