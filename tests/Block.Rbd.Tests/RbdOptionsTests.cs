using Block.Drivers;
using Block.Graph;
using Block.Rbd.Options;

namespace Block.Rbd.Tests;

/// <summary>The <c>rbd:</c> file name syntax and QEMU 7.2's <c>BlockdevOptionsRbd</c>, parsed without a cluster.</summary>
public sealed class RbdOptionsTests
{
    [Fact]
    public void Filename_with_namespace_snapshot_and_escaped_options_parses_as_qemu_does()
    {
        var o = RbdFilename.Parse(@"rbd:pool/ns/img@snap:id=alice:conf=/etc/c.conf:mon_host=127.0.0.1\:6789:rbd_cache=false");
        Assert.Equal("pool", o.Pool);
        Assert.Equal("ns", o.Namespace);
        Assert.Equal("img", o.Image);
        Assert.Equal("snap", o.Snapshot);
        Assert.Equal("alice", o.User);
        Assert.Equal("/etc/c.conf", o.Conf);
        Assert.Equal([new("mon_host", "127.0.0.1:6789"), new("rbd_cache", "false")], o.ConfigOptions!);
    }

    [Fact]
    public void Filename_without_namespace_has_the_default_namespace()
    {
        var o = RbdFilename.Parse(@"rbd:rbd/a\@b");
        Assert.Equal(("rbd", "", "a@b", (string?)null), (o.Pool, o.Namespace, o.Image, o.Snapshot));
    }

    [Theory]
    [InlineData("rbd:", "Parameter 'pool' is missing")]
    [InlineData("rbd:pool", "Parameter 'image' is missing")]
    [InlineData("rbd:pool/", "Parameter 'image' is missing")]
    [InlineData("rbd:pool/img:conf", "conf option 'conf' has no value")]
    public void Bad_filenames_are_refused_with_a_message(string filename, string message) =>
        Assert.Equal(message, Assert.Throws<BlockOptionsException>(() => RbdFilename.Parse(filename)).Message);

    [Fact]
    public void Json_filename_holds_qemus_identifying_options()
    {
        var o = RbdFilename.Parse("rbd:rbd/t1:conf=/tmp/c.conf");
        Assert.Equal("json:{\"pool\": \"rbd\", \"image\": \"t1\", \"conf\": \"/tmp/c.conf\", \"driver\": \"rbd\", \"namespace\": \"\"}", RbdFilename.Format(o));
    }

    [Fact]
    public async Task Blockdev_options_missing_the_image_name_it()
    {
        await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddRbd() });
        var e = await Assert.ThrowsAnyAsync<BlockException>(() => graph.OpenImageAsync("json:{\"driver\":\"rbd\",\"pool\":\"rbd\"}", new ImageOpenOptions()).AsTask());
        Assert.Contains("'image'", e.Message);
    }

    [Fact]
    public async Task Encryption_is_refused_with_a_clear_error()
    {
        await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddRbd() });
        var e = await Assert.ThrowsAnyAsync<BlockException>(() => graph.OpenImageAsync(
            "json:{\"driver\":\"rbd\",\"pool\":\"rbd\",\"image\":\"x\",\"encrypt\":{\"format\":\"luks\",\"key-secret\":\"s\"}}", new ImageOpenOptions()).AsTask());
        Assert.Equal(Errno.ENOTSUP, e.Errno);
        Assert.Contains("encrypted images", e.Message);
    }
}
