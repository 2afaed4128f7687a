using System.Text.Json;
using Block.Crypto.Luks;
using Block.Crypto.Qapi;

namespace Block.Fuzz.Targets;

/// <summary>
/// The LUKS1 header: parse and validate, build the <c>qemu-img info</c> record and its JSON, write the header back
/// and parse it again (it must come back the same), and open it as a locked volume from memory.
/// </summary>
/// <remarks>
/// The area is taken to be 1 TiB long, so that a 592-byte input reaches every slot check. Unlocking is left to the
/// unit tests: each try runs PBKDF2 and 4000 hashes of the splitter, milliseconds per input, and its reads are bounded
/// by the checks fuzzed here.
/// </remarks>
public sealed class LuksHeaderTarget : IFuzzTarget
{
    private const long AreaLength = 1L << 40;

    /// <inheritdoc />
    public string Name => "luks-header";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input)
    {
        var header = LuksHeader.Parse(input, AreaLength);
        using (var stream = new MemoryStream())
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            LuksInfo.From(header).WriteMembers(writer);
            writer.WriteEndObject();
        }
        var again = new byte[LuksHeader.Size];
        header.WriteTo(again);
        var reparsed = LuksHeader.Parse(again, AreaLength);
        if (reparsed.Suite != header.Suite || reparsed.PayloadOffsetSectors != header.PayloadOffsetSectors || reparsed.Uuid != header.Uuid)
            throw new InvalidOperationException("LUKS header did not survive a write and re-parse");
        var storage = new MemoryStorage(input.ToArray());
        using var volume = LuksVolume.OpenAsync(storage, null).AsTask().GetAwaiter().GetResult();
    }

    private sealed class MemoryStorage(byte[] bytes) : ILuksStorage
    {
        public long Length => AreaLength;

        public ValueTask InitializeAsync(long length, CancellationToken cancellationToken) => default;

        public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            buffer.Span.Clear();
            if (offset < bytes.Length)
                bytes.AsSpan((int)offset, (int)Math.Min(buffer.Length, bytes.Length - offset)).CopyTo(buffer.Span);
            return default;
        }

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
            throw new NotSupportedException();
    }
}
