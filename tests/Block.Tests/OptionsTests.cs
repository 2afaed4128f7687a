using Block.Drivers.Blkdebug;
using Block.Drivers.File;
using Block.Drivers.Null;
using Block.Drivers.Raw;
using Block.Graph;
using Block.Options;
using Block.Qapi;

namespace Block.Tests;

public class OptionsTests
{
    private readonly BlockdevOptionsParser _parser = new BlockGraph().Parser;

    [Fact]
    public void Dotted_keyval_builds_nested_typed_options()
    {
        var o = (BlockdevOptionsRaw)_parser.ParseKeyValue("driver=raw,node-name=top,file.driver=file,file.filename=a,,b.img,file.aio=inline,read-only=on,discard=unmap");
        Assert.Equal("top", o.NodeName);
        Assert.True(o.ReadOnly);
        Assert.Equal(BlockdevDiscardOptions.Unmap, o.Discard);
        var f = Assert.IsType<BlockdevOptionsFile>(o.File.Options);
        Assert.Equal("a,b.img", f.Filename);
        Assert.Equal(BlockdevAioOptions.Inline, f.Aio);
    }

    [Fact]
    public void Json_filename_accepts_nested_and_dotted_members()
    {
        var o = (BlockdevOptionsRaw)_parser.ParseJsonFilename("""json:{"driver": "raw", "file.driver": "file", "file.filename": "x.img", "size": 4096}""");
        Assert.Equal(4096, o.Size);
        Assert.Equal("x.img", Assert.IsType<BlockdevOptionsFile>(o.File.Options).Filename);
    }

    [Fact]
    public void A_member_given_twice_in_json_is_an_error()
    {
        var e = Assert.Throws<BlockOptionsException>(() => _parser.ParseJsonFilename("""json:{"driver": "raw", "offset": 5, "offset": 6}"""));
        Assert.Contains("offset", e.Message);
    }

    [Fact]
    public void Qmp_json_is_typed_strictly()
    {
        var e = Assert.Throws<BlockOptionsException>(() => _parser.ParseJson("""{"driver": "null-co", "size": "64k"}"""));
        Assert.Equal("Invalid parameter type for 'size', expected: integer", e.Message);
        var ok = (BlockdevOptionsNull)_parser.ParseJson("""{"driver": "null-co", "size": 65536, "read-zeroes": true}""");
        Assert.Equal(65536, ok.Size);
        Assert.True(ok.ReadZeroes);
    }

    [Fact]
    public void Keyval_sizes_take_suffixes()
    {
        var o = (BlockdevOptionsNull)_parser.ParseKeyValue("driver=null-co,size=1.5M,latency-ns=0x10");
        Assert.Equal(1572864, o.Size);
        Assert.Equal(16UL, o.LatencyNs);
    }

    [Theory]
    [InlineData("driver=raw,file.driver=file,file.filename=x,file.bogus=1", "Parameter 'file.bogus' is unexpected")]
    [InlineData("driver=raw,bogus=1,file.driver=file,file.filename=x", "Parameter 'bogus' is unexpected")]
    [InlineData("driver=file", "Parameter 'filename' is missing")]
    [InlineData("driver=nope", "Parameter 'driver' does not accept value 'nope'")]
    [InlineData("driver=file,filename=x,aio=fast", "Parameter 'aio' does not accept value 'fast'")]
    [InlineData("driver=file,filename=x,read-only=maybe", "Parameter 'read-only' expects 'on' or 'off'")]
    [InlineData("driver=raw,file.driver=file,file.filename=x,offset=12z", "Parameter 'offset' expects integer")]
    [InlineData("filename=x", "Parameter 'driver' is missing")]
    [InlineData("driver=file,filename=x,node-name=1bad", "Invalid node-name: '1bad'")]
    [InlineData("driver=file,filename=x,node-name=a234567890123456789012345678901x", "Node name too long")]
    [InlineData("0.errno=", "Parameter '0' is unexpected: options must be named, not a list")]
    public void Bad_options_are_errors_that_name_the_option(string text, string message)
    {
        var e = Assert.Throws<BlockOptionsException>(() => _parser.ParseKeyValue(text));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void Blkdebug_rules_are_parsed_from_lists()
    {
        var o = (BlockdevOptionsBlkdebug)_parser.ParseKeyValue(
            "driver=blkdebug,align=4096,image.driver=file,image.filename=x,inject-error.0.event=write_aio,inject-error.0.errno=28,inject-error.0.once=on");
        Assert.Equal(4096, o.Align);
        var rule = Assert.Single(o.InjectError);
        Assert.Equal(28, rule.Errno);
        Assert.True(rule.Once);
    }

    [Theory]
    [InlineData("0", 0UL)]
    [InlineData("512", 512UL)]
    [InlineData("64k", 65536UL)]
    [InlineData("64K", 65536UL)]
    [InlineData("1.5G", 1610612736UL)]
    [InlineData("2T", 2199023255552UL)]
    [InlineData("1E", 1152921504606846976UL)]
    [InlineData("0x1000", 4096UL)]
    [InlineData("100b", 100UL)]
    public void Sizes_parse_as_qemu_parses_them(string text, ulong expected)
    {
        Assert.True(SizeParser.TryParse(text, out ulong v));
        Assert.Equal(expected, v);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-1")]
    [InlineData("12x")]
    [InlineData("1.5")]
    [InlineData("k")]
    [InlineData("16E")]
    public void Bad_sizes_are_refused(string text) => Assert.False(SizeParser.TryParse(text, out _));
}
