using Block.Iscsi.Options;
using Block.TestSupport;

namespace Block.Iscsi.Tests;

/// <summary>QEMU's iscsi URLs and options, parsed without a target.</summary>
public sealed class IscsiOptionsTests
{
    [Fact]
    public void Url_with_credentials_port_target_and_lun_parses_as_in_qemu()
    {
        var o = IscsiUrl.Parse("iscsi://alice%s3cret@192.0.2.7:3261/iqn.2001-05.com.example:storage.disk1/3");
        Assert.Equal(IscsiTransport.Tcp, o.Transport);
        Assert.Equal("alice", o.User);
        Assert.Equal("s3cret", o.Password);
        Assert.Equal("192.0.2.7:3261", o.Portal);
        Assert.Equal("iqn.2001-05.com.example:storage.disk1", o.Target);
        Assert.Equal(3, o.Lun);
    }

    [Fact]
    public void Url_without_port_or_credentials_and_ipv6_portals_parse()
    {
        var o = IscsiUrl.Parse("iscsi://host.example/iqn.2001-05.com.example:t/0");
        Assert.Equal("host.example", o.Portal);
        Assert.Null(o.User);
        Assert.Equal("[::1]:3260", IscsiUrl.Parse("iscsi://[::1]:3260/iqn.x:t/1").Portal);
        Assert.Equal(IscsiTransport.Iser, IscsiUrl.Parse("iser://h/iqn.x:t/1").Transport);
    }

    [Theory]
    [InlineData("iscsi://host")]
    [InlineData("iscsi://host/iqn.x:t")]
    [InlineData("iscsi://host/iqn.x:t/lun")]
    [InlineData("iscsi:///iqn.x:t/1")]
    [InlineData("iscsi://%pw@host/iqn.x:t/1")]
    [InlineData("http://host/iqn.x:t/1")]
    public void Malformed_urls_are_rejected_with_the_expected_form(string url)
    {
        var e = Assert.Throws<BlockOptionsException>(() => IscsiUrl.Parse(url));
        Assert.Contains("Failed to parse URL", e.Message);
    }

    [Fact]
    public void Missing_portal_and_bad_enum_values_name_the_option()
    {
        var missing = BlkRunner.Run("info", "--image-opts", "driver=iscsi,transport=tcp,target=iqn.x:t");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("portal", missing.Stderr);
        var digest = BlkRunner.Run("info", "--image-opts", "driver=iscsi,transport=tcp,portal=127.0.0.1:1,target=iqn.x:t,header-digest=md5");
        Assert.NotEqual(0, digest.ExitCode);
        Assert.Contains("header-digest", digest.Stderr);
    }
}
