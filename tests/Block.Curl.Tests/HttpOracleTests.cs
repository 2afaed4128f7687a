using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Curl.Tests;

/// <summary>blk and QEMU's tools against the same nginx, over http and https: same answers, same Range headers.</summary>
public sealed class HttpOracleTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly Nginx _nginx;
    private readonly byte[] _raw;

    public HttpOracleTests()
    {
        _nginx = Nginx.Start(_dir.Path);
        _raw = CurlTestImages.Write(_nginx.Root);
        File.Copy(Path.Combine(_nginx.Root, "disk.qcow2"), Path.Combine(_nginx.Root, "private", "disk.qcow2"));
    }

    private static readonly string[] s_reads =
    [
        "read 1 1", "read 100 1000", "read 300k 4k", "read 0 512", "read 1M 2M", "read 1500k 4k", "read 4194000 304",
        "read -P 0 1M 512k", "readv 64k 4k 4k",
    ];

    private static string[] IoArgs(string url, IEnumerable<string> commands, params string[] options)
    {
        var args = new List<string>(options) { "-r", "-f", "raw" };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }
        args.Add(url);
        return [.. args];
    }

    [Fact]
    public void Reads_over_http_send_qemu_ios_range_headers_and_return_its_results()
    {
        string url = _nginx.HttpUrl("disk.raw");
        _nginx.ClearLog();
        var qemu = ProcessRunner.Run(QemuIo.Path, IoArgs(url, s_reads));
        var qemuRequests = _nginx.Requests();
        _nginx.ClearLog();
        var ours = BlkRunner.Run(["io", .. IoArgs(url, s_reads)]);
        var ourRequests = _nginx.Requests();

        Assert.Equal(0, ours.ExitCode);
        Assert.Equal(BlkRunner.Normalize(qemu.Stdout), BlkRunner.Normalize(ours.Stdout));
        Assert.Equal(qemuRequests, ourRequests);
        Assert.Contains("GET /disk.raw 206 bytes=1-262145", ourRequests);
    }

    [Fact]
    public void Readahead_option_changes_the_ranges_as_in_qemu()
    {
        string[] reads = ["read 0 4k", "read 4k 4k", "read 70k 4k"];
        string opts = $"driver=raw,file.driver=http,file.url={_nginx.HttpUrl("disk.raw")},file.readahead=64k";
        _nginx.ClearLog();
        var qemu = ProcessRunner.Run(QemuIo.Path, ["-r", "--image-opts", .. reads.SelectMany(r => new[] { "-c", r }), opts]);
        var qemuRequests = _nginx.Requests();
        _nginx.ClearLog();
        var ours = BlkRunner.Run(["io", "-r", "--image-opts", .. reads.SelectMany(r => new[] { "-c", r }), opts]);
        Assert.Equal(BlkRunner.Normalize(qemu.Stdout), BlkRunner.Normalize(ours.Stdout));
        Assert.Equal(qemuRequests, _nginx.Requests());
    }

    [Fact]
    public void Info_of_qcow2_over_http_matches_qemu_img_with_the_same_requests()
    {
        string url = _nginx.HttpUrl("disk.qcow2");
        _nginx.ClearLog();
        var qemu = QemuImg.Run("info", url).EnsureSuccess("qemu-img info");
        var qemuRequests = _nginx.Requests();
        _nginx.ClearLog();
        var ours = BlkRunner.Run("info", url);
        Assert.Equal(qemu.Stdout, ours.Stdout);
        Assert.Equal(qemuRequests, _nginx.Requests());

        var qemuJson = QemuImg.Run("info", "--output=json", url).EnsureSuccess("qemu-img info");
        Assert.Equal(qemuJson.Stdout, BlkRunner.Run("info", "--output=json", url).Stdout);
    }

    [Fact]
    public void Qcow2_over_https_reads_and_converts_as_with_qemu_img()
    {
        string name = "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"https\",\"url\":\"" + _nginx.HttpsUrl("disk.qcow2") + "\",\"sslverify\":false}}";
        var qemuInfo = JsonNode.Parse(QemuImg.Run("info", "--output=json", name).EnsureSuccess("qemu-img info").Stdout)!.AsObject();
        var ourResult = BlkRunner.Run("info", "--output=json", name);
        Assert.Equal(0, ourResult.ExitCode);
        var ourInfo = JsonNode.Parse(ourResult.Stdout)!.AsObject();
        foreach (var key in new[] { "virtual-size", "format", "cluster-size", "format-specific", "dirty-flag" })
            Assert.Equal(qemuInfo[key]?.ToJsonString(), ourInfo[key]?.ToJsonString());

        string qemuOut = _dir.File("qemu.raw"), ourOut = _dir.File("ours.raw");
        QemuImg.Run("convert", "-m", "1", "-O", "raw", name, qemuOut).EnsureSuccess("qemu-img convert");
        Assert.Equal(0, BlkRunner.Run("convert", "-O", "raw", name, ourOut).ExitCode);
        Assert.Equal(_raw, File.ReadAllBytes(qemuOut));
        Assert.Equal(_raw, File.ReadAllBytes(ourOut));

        var read = BlkRunner.Run("io", "-r", "-c", "read -v 1048576 64", name);
        var qemuRead = ProcessRunner.Run(QemuIo.Path, ["-r", "-c", "read -v 1048576 64", name]);
        Assert.Equal(BlkRunner.Normalize(qemuRead.Stdout), BlkRunner.Normalize(read.Stdout));
    }

    [Fact]
    public void Https_with_an_untrusted_certificate_is_refused_as_by_qemu_img()
    {
        string url = _nginx.HttpsUrl("disk.raw");
        var qemu = QemuImg.Run("info", url);
        var ours = BlkRunner.Run("info", url);
        Assert.NotEqual(0, qemu.ExitCode);
        Assert.NotEqual(0, ours.ExitCode);
        // The TLS library's own words differ (QEMU links GnuTLS's libcurl, we the OpenSSL one); the frame is QEMU's.
        string prefix = $"Could not open '{url}': CURL: Error opening file: ";
        Assert.Contains(prefix, qemu.Stderr);
        Assert.StartsWith("blk: " + prefix, ours.Stderr);
        Assert.Contains("certificate", ours.Stderr, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Username_and_password_secret_authenticate_as_with_qemu_img()
    {
        string name = "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"http\",\"url\":\"" + _nginx.HttpUrl("private/disk.qcow2") +
            "\",\"username\":\"alice\",\"password-secret\":\"pw\"}}";
        string[] good = ["--object", "secret,id=pw,data=secret"], bad = ["--object", "secret,id=pw,data=wrong"];
        string qemuOut = _dir.File("qemu.raw"), ourOut = _dir.File("ours.raw");
        QemuImg.Run(["convert", .. good, "-m", "1", "-O", "raw", name, qemuOut], null).EnsureSuccess("qemu-img convert");
        Assert.Equal(0, BlkRunner.Run(["convert", .. good, "-O", "raw", name, ourOut]).ExitCode);
        Assert.Equal(File.ReadAllBytes(qemuOut), File.ReadAllBytes(ourOut));
        Assert.Equal(_raw, File.ReadAllBytes(ourOut));

        var qemu = QemuImg.Run(["info", .. bad, name], null);
        var ours = BlkRunner.Run(["info", .. bad, name]);
        Assert.Contains("CURL: Error opening file: The requested URL returned error: 401", qemu.Stderr);
        Assert.Equal(BlkRunner.AsBlk(qemu.Stderr), ours.Stderr);
    }

    [Theory]
    [InlineData("readahead", "1000")]
    [InlineData("timeout", "10001")]
    [InlineData("timeout", "-1")]
    [InlineData("password-secret", "nothere")]
    [InlineData("proxy-password-secret", "nothere")]
    public void Bad_options_get_qemu_img_s_error(string key, string value)
    {
        string name = "json:{\"file.driver\":\"http\",\"file.url\":\"" + _nginx.HttpUrl("disk.raw") + "\",\"file." + key + "\":\"" + value + "\"}";
        var qemu = QemuImg.Run("info", name);
        var ours = BlkRunner.Run("info", name);
        Assert.NotEqual(0, ours.ExitCode);
        string qemuError = string.Join('\n', qemu.Stderr.Split('\n').Where(l => !l.Contains("GLib", StringComparison.Ordinal)));
        Assert.Equal(BlkRunner.AsBlk(qemuError), ours.Stderr);
    }

    [Fact]
    public void A_missing_file_is_qemu_img_s_404_error()
    {
        string url = _nginx.HttpUrl("nope.raw");
        Assert.Equal(BlkRunner.AsBlk(QemuImg.Run("info", url).Stderr), BlkRunner.Run("info", url).Stderr);
    }

    [Fact]
    public void A_read_write_open_is_refused()
    {
        var ours = BlkRunner.Run("io", "-f", "raw", "-c", "read 0 512", _nginx.HttpUrl("disk.raw"));
        Assert.Contains("curl block device does not support writes", ours.Stderr);
    }

    public void Dispose()
    {
        _nginx.Dispose();
        _dir.Dispose();
    }
}
