namespace Block.Qmp.Tests;

public sealed class QmpSessionTests
{
    [Fact]
    public async Task Greeting_reports_the_seed_schema_version_and_no_capabilities()
    {
        await using var fixture = QmpServerFixture.Start();
        await using var client = await fixture.ConnectAsync(negotiate: false);
        var version = client.Greeting["QMP"]!["version"]!;
        Assert.Equal(2, (int)version["qemu"]!["major"]!);
        Assert.Equal(9, (int)version["qemu"]!["minor"]!);
        Assert.Equal(0, (int)version["qemu"]!["micro"]!);
        Assert.StartsWith("Block ", (string)version["package"]!);
        Assert.Empty(client.Greeting["QMP"]!["capabilities"]!.AsArray());
    }
}
