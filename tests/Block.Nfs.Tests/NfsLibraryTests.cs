using Block.Nfs.Interop;
using Block.Nfs.Options;

namespace Block.Nfs.Tests;

/// <summary>libnfs is loaded lazily, and a machine without it is told which package is missing.</summary>
public sealed class NfsLibraryTests
{
    [Fact]
    public void Without_libnfs_the_open_names_the_missing_package()
    {
        string? message = NfsLibrary.Probe("libnfs.so.999");
        Assert.Equal("the nfs driver needs the system libnfs (libnfs.so.999, Debian's libnfs13), which is not installed", message);
        Assert.Null(NfsLibrary.Probe(LibNfs.Library));
    }

    [Fact]
    public void An_nfs_url_gives_qemus_options()
    {
        var options = NfsUrl.Parse("nfs://server.example/export/dir/disk.qcow2?uid=1000&gid=0x10&tcp-syncnt=3&readahead=65536&pagecache=010&debug=1");
        Assert.Equal("server.example", options.Server.Host);
        Assert.Equal("inet", options.Server.Type);
        Assert.Equal("/export/dir/disk.qcow2", options.Path);
        Assert.Equal(1000, options.User);
        Assert.Equal(16, options.Group);
        Assert.Equal(3, options.TcpSynCount);
        Assert.Equal(65536, options.ReadaheadSize);
        Assert.Equal(8, options.PageCacheSize);
        Assert.Equal(1, options.Debug);
        Assert.Equal("nfs://server.example/export/dir/disk.qcow2?uid=1000&gid=16", NfsUrl.Format(options));
    }
}
