using Block.Gluster.Interop;
using Block.Gluster.Options;

namespace Block.Gluster.Tests;

/// <summary>libgfapi is loaded lazily, and a machine without it is told which package is missing.</summary>
public sealed class GlusterLibraryTests
{
    [Fact]
    public void Without_libgfapi_the_open_names_the_missing_package()
    {
        string? message = GlusterLibrary.Probe("libgfapi.so.999");
        Assert.Equal("the gluster driver needs the system libgfapi (libgfapi.so.999, Debian's libgfapi0), which is not installed", message);
        Assert.Null(GlusterLibrary.Probe(LibGfapi.Library));
    }
}

/// <summary>QEMU's <c>gluster[+transport]://</c> file names, parsed as QEMU 7.2 parses them.</summary>
public sealed class GlusterUrlTests
{
    [Fact]
    public void A_tcp_url_gives_the_volume_the_image_and_one_server()
    {
        var options = GlusterUrl.Parse("gluster://server.example:24008/vol0/dir/disk.qcow2");
        Assert.Equal("vol0", options.Volume);
        Assert.Equal("dir/disk.qcow2", options.Path);
        var server = Assert.Single(options.Server);
        Assert.Equal(GlusterTransport.Tcp, server.Type);
        Assert.Equal("server.example", server.Host);
        Assert.Equal("24008", server.Port);
        Assert.Equal("gluster://server.example:24008/vol0/dir/disk.qcow2", GlusterUrl.Format(options));
    }

    [Theory]
    [InlineData("gluster+tcp://[::1]/v/a.raw", "::1", null)]
    [InlineData("gluster:///v/a.raw", "localhost", null)]
    [InlineData("gluster://h//v//a.raw", "h", null)]
    public void Tcp_urls_take_ipv6_hosts_and_default_to_localhost(string url, string host, string? port)
    {
        var server = Assert.Single(GlusterUrl.Parse(url).Server);
        Assert.Equal(host, server.Host);
        Assert.Equal(port, server.Port);
    }

    [Fact]
    public void A_unix_url_takes_its_socket_from_the_query()
    {
        var options = GlusterUrl.Parse("gluster+unix:///vol0/a.raw?socket=/run/glusterd.socket");
        var server = Assert.Single(options.Server);
        Assert.Equal(GlusterTransport.Unix, server.Type);
        Assert.Equal("/run/glusterd.socket", server.Path);
        Assert.Equal("gluster+unix:///vol0/a.raw?socket=/run/glusterd.socket", GlusterUrl.Format(options));
    }

    [Fact]
    public void An_rdma_url_warns_and_uses_tcp()
    {
        var warnings = new List<string>();
        var options = GlusterUrl.Parse("gluster+rdma://h/v/a.raw", warnings.Add);
        Assert.Equal(GlusterTransport.Tcp, Assert.Single(options.Server).Type);
        Assert.Equal(["rdma feature is not supported, falling back to tcp"], warnings);
    }
}
