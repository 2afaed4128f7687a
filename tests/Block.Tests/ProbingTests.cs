using Block.Drivers;
using Block.Graph;
using Block.Options;
using Block.TestSupport;

namespace Block.Tests;

/// <summary>Format probing: raw is the fallback, and a probed raw image may not turn itself into another format.</summary>
public class ProbingTests
{
    /// <summary>A format recognised by its magic, standing in for the real ones during these tests.</summary>
    private sealed class MagicFormat : BlockDriver
    {
        public override string Name => "magicfmt";

        public override BlockDriverKind Kind => BlockDriverKind.Format;

        public override int Probe(ReadOnlySpan<byte> header, string? filename) =>
            header.StartsWith("MAGC"u8) ? 100 : 0;

        public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
            throw new BlockException(Errno.ENOTSUP, "test driver");

        public override ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken) =>
            throw new BlockException(Errno.ENOTSUP, "test driver");
    }

    private static BlockGraph Graph() => new(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().Add(new MagicFormat()) });

    [Fact]
    public async Task Probing_picks_the_format_whose_magic_matches_and_raw_otherwise()
    {
        using var dir = new TempDirectory();
        string plain = dir.File("plain.img"), magic = dir.File("magic.img");
        File.WriteAllBytes(plain, new byte[4096]);
        File.WriteAllBytes(magic, [.. "MAGC"u8, .. new byte[4092]]);
        await using var graph = Graph();
        var protocol = await graph.AddNodeAsync(new Drivers.File.BlockdevOptionsFile { Filename = magic, NodeName = "m" });
        Assert.Equal("magicfmt", (await graph.ProbeAsync(protocol)).Name);
        var backend = await graph.OpenImageAsync(plain, new ImageOpenOptions { AllowProbing = true });
        Assert.Equal("raw", backend.Root!.DriverName);
    }

    [Fact]
    public async Task Probing_is_refused_unless_allowed()
    {
        using var dir = new TempDirectory();
        string plain = dir.File("plain.img");
        File.WriteAllBytes(plain, new byte[4096]);
        await using var graph = Graph();
        var e = await Assert.ThrowsAsync<BlockOptionsException>(async () => await graph.OpenImageAsync(plain));
        Assert.Contains("probing is not allowed", e.Message);
    }

    [Fact]
    public async Task A_probed_raw_image_refuses_a_first_sector_that_would_probe_as_another_format()
    {
        using var dir = new TempDirectory();
        string plain = dir.File("plain.img");
        File.WriteAllBytes(plain, Patterns.Fill(8192, 0x11));
        await using var graph = Graph();
        var backend = await graph.OpenImageAsync(plain, new ImageOpenOptions { AllowProbing = true });
        var e = await Assert.ThrowsAsync<BlockException>(async () => await backend.WriteAsync(0, "MAGC"u8.ToArray()));
        Assert.Equal(Errno.EPERM, e.Errno);
        // Writes elsewhere, and harmless writes to the first sector, go through (read-modify-write keeps the rest).
        await backend.WriteAsync(512, "MAGC"u8.ToArray());
        await backend.WriteAsync(1, new byte[] { 0x22 });
        var bytes = File.ReadAllBytes(plain);
        Assert.Equal(0x11, bytes[0]);
        Assert.Equal(0x22, bytes[1]);
        Assert.Equal("MAGC"u8.ToArray(), bytes[512..516]);
    }

    [Fact]
    public async Task A_raw_image_opened_with_its_format_given_may_write_anything()
    {
        using var dir = new TempDirectory();
        string plain = dir.File("plain.img");
        File.WriteAllBytes(plain, new byte[4096]);
        await using var graph = Graph();
        var backend = await graph.OpenImageAsync(plain, new ImageOpenOptions { Format = "raw" });
        await backend.WriteAsync(0, "MAGC"u8.ToArray());
        Assert.Equal("MAGC"u8.ToArray(), File.ReadAllBytes(plain)[..4]);
    }
}
