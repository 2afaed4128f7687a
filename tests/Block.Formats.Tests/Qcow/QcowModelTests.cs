using Block.Qapi;

namespace Block.Formats.Tests.Qcow;

/// <summary>
/// <see cref="FormatModel"/> runs in both geometries QEMU creates (4 KiB clusters; 512-byte clusters over a raw backing
/// file shorter than the disk), on both engines. qemu-img has no check for qcow, so the model and qemu-img's reading
/// of the image are the proof.
/// </summary>
public class QcowModelTests
{
    private static readonly FormatModel s_model = new("qcow", "qcow", Size: (4 << 20) + (1 << 19), BlockSize: 1 << 20, QemuChecks: false);

    public static TheoryData<string, BlockdevAioOptions> Setups() => new()
    {
        { "preallocation=off", BlockdevAioOptions.Inline },
        { "preallocation=off", BlockdevAioOptions.Threads },
        { "backing_file=base.raw,backing_fmt=raw", BlockdevAioOptions.Threads },
    };

    [Theory]
    [MemberData(nameof(Setups))]
    public void Random_request_sequences_read_back_as_the_byte_model(string options, BlockdevAioOptions aio) =>
        s_model.Check(options, aio, options.Contains("backing_file", StringComparison.Ordinal) ? "base.raw" : null);
}
