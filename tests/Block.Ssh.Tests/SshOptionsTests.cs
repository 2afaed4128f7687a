using Block.Drivers;
using Block.Ssh.HostKeys;
using Block.Ssh.Options;

namespace Block.Ssh.Tests;

public sealed class SshOptionsTests
{
    private static BlockdevOptionsSsh Parse(string json) =>
        (BlockdevOptionsSsh)new Block.Options.BlockdevOptionsParser(DriverRegistry.CreateDefault().AddSsh()).ParseJson(json);

    [Fact]
    public void An_ssh_uri_gives_user_host_port_path_and_the_legacy_host_key_check()
    {
        var o = SshFilename.Parse("ssh://alice@example.org:2222/srv/disk%20a.img?host_key_check=sha256:ab:cd&other=1");
        Assert.Equal(new SshServerAddress("example.org", "2222"), o.Server);
        Assert.Equal("/srv/disk a.img", o.Path);
        Assert.Equal("alice", o.User);
        Assert.Equal(new SshHostKeyCheck(SshHostKeyCheckMode.Hash, SshHostKeyHashType.Sha256, "ab:cd"), o.HostKeyCheck);
        Assert.Equal("ssh://alice@example.org:2222/srv/disk a.img?host_key_check=sha256:ab:cd", SshFilename.Format(o, "alice"));
    }

    [Fact]
    public void An_ssh_uri_without_user_or_port_takes_port_22_and_names_the_local_user_in_the_file_name()
    {
        var o = SshFilename.Parse("ssh://[::1]/disk");
        Assert.Equal(new SshServerAddress("::1", "22"), o.Server);
        Assert.Null(o.User);
        Assert.Null(o.HostKeyCheck);
        Assert.Equal("ssh://bob@[::1]:22/disk", SshFilename.Format(o, "bob"));
    }

    [Theory]
    [InlineData("ssh://host", "missing remote path in URI")]
    [InlineData("ssh:///path", "missing hostname in URI")]
    [InlineData("ssh://host/p?host_key_check=foo", "unknown host_key_check setting (foo)")]
    public void A_bad_ssh_uri_is_refused_with_qemus_message(string uri, string message) =>
        Assert.Equal(message, Assert.Throws<BlockOptionsException>(() => SshFilename.Parse(uri)).Message);

    [Theory]
    [InlineData("no", SshHostKeyCheckMode.None)]
    [InlineData("yes", SshHostKeyCheckMode.KnownHosts)]
    [InlineData("md5:00", SshHostKeyCheckMode.Hash)]
    [InlineData("sha1:00", SshHostKeyCheckMode.Hash)]
    public void The_legacy_host_key_check_values_map_to_qemu_7_2s_modes(string value, SshHostKeyCheckMode mode) =>
        Assert.Equal(mode, SshHostKeyCheck.ParseLegacy(value).Mode);

    [Fact]
    public void Qapi_options_take_server_path_user_host_key_check_and_identity_file()
    {
        var o = Parse("""{"driver":"ssh","server":{"host":"h","port":"2200"},"path":"/p","user":"u","host-key-check":{"mode":"hash","type":"md5","hash":"0a:0b"},"identity-file":"/k"}""");
        Assert.Equal(new SshServerAddress("h", "2200"), o.Server);
        Assert.Equal("/p", o.Path);
        Assert.Equal("u", o.User);
        Assert.Equal(new SshHostKeyCheck(SshHostKeyCheckMode.Hash, SshHostKeyHashType.Md5, "0a:0b"), o.HostKeyCheck);
        Assert.Equal("/k", o.IdentityFile);
    }

    [Fact]
    public void Qapi_options_refuse_an_unknown_mode_and_a_file_name_beside_the_server()
    {
        Assert.Equal("Parameter 'host-key-check.mode' does not accept value 'maybe'",
            Assert.Throws<BlockOptionsException>(() => Parse("""{"driver":"ssh","server":{"host":"h","port":"22"},"path":"/p","host-key-check":{"mode":"maybe"}}""")).Message);
        Assert.Equal("user, host, port, path and host_key_check cannot be used at the same time as a file option",
            Assert.Throws<BlockOptionsException>(() => Parse("""{"driver":"ssh","filename":"ssh://h/p","path":"/p"}""")).Message);
    }

    [Theory]
    [InlineData("0a1b", true)]
    [InlineData("0a:1b", true)]
    [InlineData(":0a::1b", true)]
    [InlineData("0A1B", true)]
    [InlineData("0a1b00", false)]
    [InlineData("0a", false)]
    [InlineData("0a1c", false)]
    [InlineData("zz1b", false)]
    public void A_fingerprint_matches_as_qemu_compares_it(string given, bool matches) =>
        Assert.Equal(matches, HostKeyVerifier.FingerprintMatches([0x0a, 0x1b], given));
}
