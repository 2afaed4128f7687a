using Block.Drivers.Archipelago;
using Block.Graph;
using Block.Options;

namespace Block.Tests;

/// <summary>The seed's archipelago driver: every form of its options parses; opening says the library is gone.</summary>
public sealed class ArchipelagoTests
{
    private readonly BlockdevOptionsParser _parser = new BlockGraph().Parser;

    [Fact]
    public void Blockdev_options_parse_as_the_seed_defines_them()
    {
        var o = (BlockdevOptionsArchipelago)_parser.ParseJson(
            """{"driver": "archipelago", "volume": "vol1", "mport": 1002, "vport": 502, "segment": "seg", "node-name": "a"}""");
        Assert.Equal(("vol1", 1002L, 502L, "seg", "a"), (o.Volume, o.Mport, o.Vport, o.Segment, o.NodeName));

        var k = (BlockdevOptionsArchipelago)_parser.ParseKeyValue("driver=archipelago,volume=v,mport=7");
        Assert.Equal(("v", 7L, (long?)null, (string?)null), (k.Volume, k.Mport, k.Vport, k.Segment));
    }

    [Fact]
    public void Volume_is_required()
    {
        var e = Assert.Throws<BlockOptionsException>(() => _parser.ParseJson("""{"driver": "archipelago", "mport": 1}"""));
        Assert.Contains("'volume' is missing", e.Message);
    }

    [Fact]
    public void Unknown_option_is_refused()
    {
        var e = Assert.Throws<BlockOptionsException>(() => _parser.ParseJson("""{"driver": "archipelago", "volume": "v", "port": 1}"""));
        Assert.Contains("port", e.Message);
    }

    [Theory]
    [InlineData("archipelago:vol", "vol", null, null, null)]
    [InlineData("archipelago:vol/mport=1003", "vol", 1003L, null, null)]
    [InlineData("archipelago:vol/mport=1003:vport=503:segment=s1", "vol", 1003L, 503L, "s1")]
    [InlineData("archipelago:vol/segment=s2", "vol", null, null, "s2")]
    public void Filename_syntax_parses(string filename, string volume, long? mport, long? vport, string? segment)
    {
        var o = (BlockdevOptionsArchipelago)new ArchipelagoDriver().OptionsFromFilename(filename);
        Assert.Equal((volume, mport, vport, segment), (o.Volume, o.Mport, o.Vport, o.Segment));
    }

    [Theory]
    [InlineData("archipelago:")]
    [InlineData("archipelago:/mport=1")]
    [InlineData("archipelago:vol/mport=x")]
    [InlineData("archipelago:vol/mport=-1")]
    [InlineData("archipelago:vol/bogus=1")]
    public void Malformed_filenames_are_refused(string filename) =>
        Assert.Throws<BlockOptionsException>(() => new ArchipelagoDriver().OptionsFromFilename(filename));

    [Fact]
    public async Task Opening_fails_with_an_error_that_says_the_library_is_gone()
    {
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAsync<BlockException>(async () =>
            await graph.AddNodeAsync(new BlockdevOptionsArchipelago { Volume = "vol1", NodeName = "a" }));
        Assert.Equal(Errno.ENOTSUP, e.Errno);
        Assert.Contains("vol1", e.Message);
        Assert.Contains("no longer exist", e.Message);
        Assert.Null(graph.FindNode("a"));
    }
}
