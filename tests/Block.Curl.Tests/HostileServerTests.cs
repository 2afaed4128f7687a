using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Graph;
using Block.TestSupport;

namespace Block.Curl.Tests;

/// <summary>
/// Servers that lie about ranges or drop connections: every lie is a clear I/O error, never wrong bytes, and the node
/// still reads correctly once the server behaves.
/// </summary>
public sealed class HostileServerTests : IDisposable
{
    private readonly byte[] _file;
    private readonly HostileHttpServer _server;

    public HostileServerTests()
    {
        _file = new byte[2 << 20];
        new Random(7).NextBytes(_file);
        _server = new HostileHttpServer(_file);
    }

    private static BlockGraph NewGraph() => new(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddCurl() });

    private async Task<BlockBackend> OpenAsync(BlockGraph graph, long readahead = CurlDriver.DefaultReadahead)
    {
        var tree = new JsonObject { ["driver"] = "http", ["url"] = _server.Url, ["readahead"] = readahead };
        return await graph.OpenImageAsync(tree, new ImageOpenOptions { ReadOnly = true });
    }

    [Theory]
    [InlineData(HostileMode.WholeFile, "status 200")]
    [InlineData(HostileMode.OtherRange, "server sent range 1536-")]
    [InlineData(HostileMode.ShortBody, "")]
    [InlineData(HostileMode.DropAfterHeaders, "")]
    [InlineData(HostileMode.DropAtOnce, "")]
    [InlineData(HostileMode.LongBody, "more than the")]
    public async Task A_lying_or_dropping_server_fails_the_read_with_EIO_and_no_bytes_from_it_are_kept(HostileMode mode, string detail)
    {
        await using var graph = NewGraph();
        var printed = new List<string>();
        graph.MessagePrinted += printed.Add;
        var disk = await OpenAsync(graph);
        _server.Mode = mode;
        var buffer = new byte[64 * 1024];
        var error = await Assert.ThrowsAsync<BlockException>(async () => await disk.ReadAsync(1024, buffer));
        Assert.Equal(Errno.EIO, error.Errno);
        Assert.Contains(detail, error.Message);
        Assert.Contains(printed, line => line.StartsWith("curl: ", StringComparison.Ordinal));

        _server.Mode = HostileMode.Honest;
        await disk.ReadAsync(1024, buffer);
        Assert.Equal(_file.AsSpan(1024, buffer.Length).ToArray(), buffer);
    }

    [Fact]
    public void A_whole_file_answer_is_an_io_error_in_blk_io()
    {
        _server.Mode = HostileMode.WholeFile;
        var ours = BlkRunner.Run("io", "-r", "-f", "raw", "-c", "read 4096 4096", _server.Url);
        Assert.Equal("read failed: Input/output error\n", ours.Stdout);
        Assert.Contains("curl: server answered a range request with status 200", ours.Stderr);
    }

    [Theory]
    [InlineData(HostileMode.NoAcceptRanges)]
    [InlineData(HostileMode.NoLength)]
    public void A_server_without_ranges_or_size_is_refused_at_open_with_qemu_img_s_error(HostileMode mode)
    {
        _server.Mode = mode;
        var qemu = QemuImg.Run("info", _server.Url);
        var ours = BlkRunner.Run("info", _server.Url);
        Assert.NotEqual(0, ours.ExitCode);
        Assert.Equal(BlkRunner.AsBlk(qemu.Stderr), ours.Stderr);
    }

    [Fact]
    public async Task Eight_reads_are_in_flight_at_once()
    {
        // The server answers no GET until eight wait together: reads sent one after another would never complete.
        _server.HoldUntil = 8;
        await using var graph = NewGraph();
        var disk = await OpenAsync(graph, readahead: 0);
        var buffers = Enumerable.Range(0, 8).Select(_ => new byte[4096]).ToArray();
        var reads = buffers.Select((b, i) => disk.ReadAsync(i * 256 * 1024, b).AsTask()).ToArray();
        await Task.WhenAll(reads).WaitAsync(TimeSpan.FromSeconds(120));
        for (int i = 0; i < 8; i++)
            Assert.Equal(_file.AsSpan(i * 256 * 1024, 4096).ToArray(), buffers[i]);
    }

    [Fact]
    public async Task Reads_inside_a_fetched_or_running_range_send_no_new_request()
    {
        await using var graph = NewGraph();
        var disk = await OpenAsync(graph);
        int before = _server.Requests.Count;
        var a = new byte[4096];
        var b = new byte[4096];
        await disk.ReadAsync(0, a);
        await disk.ReadAsync(200 * 1024, b);
        Assert.Equal(before + 1, _server.Requests.Count);
        Assert.Equal(_file.AsSpan(200 * 1024, 4096).ToArray(), b);
    }

    [Fact]
    public async Task The_cookie_option_is_sent_with_every_request()
    {
        await using var graph = NewGraph();
        var tree = new JsonObject { ["driver"] = "http", ["url"] = _server.Url, ["cookie"] = "session=abc; theme=dark" };
        var disk = await graph.OpenImageAsync(tree, new ImageOpenOptions { ReadOnly = true });
        await disk.ReadAsync(0, new byte[512]);
        Assert.All(_server.Requests, head => Assert.Contains("Cookie: session=abc; theme=dark\n", head));
    }

    [Fact]
    public void The_proxy_comes_from_http_proxy_in_the_environment()
    {
        // libcurl reads the environment of the process, so blk runs as a child with http_proxy set; the host name
        // resolves nowhere, so only the proxy (the test server, which sees absolute URLs) can answer.
        string blk = typeof(Block.Cli.Blk).Assembly.Location;
        var result = ProcessRunner.Run("dotnet", ["exec", blk, "io", "-r", "-f", "raw", "-c", "read 0 512", "http://image.invalid/disk.img"],
            environment: new Dictionary<string, string> { ["http_proxy"] = $"http://127.0.0.1:{_server.Port}", ["no_proxy"] = "" });
        Assert.Equal("", result.Stderr);
        Assert.Contains("read 512/512 bytes at offset 0", result.Stdout);
        Assert.Contains(_server.Requests, head => head.StartsWith("HEAD http://image.invalid/disk.img ", StringComparison.Ordinal));
        Assert.Contains(_server.Requests, head => head.StartsWith("GET http://image.invalid/disk.img ", StringComparison.Ordinal));
    }

    public void Dispose() => _server.Dispose();
}
