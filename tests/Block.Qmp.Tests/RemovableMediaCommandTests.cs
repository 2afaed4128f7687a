using System.Text.Json.Nodes;
using Block.Devices;
using Block.Graph;

namespace Block.Qmp.Tests;

/// <summary>
/// The seed's <c>x-blockdev-remove-medium</c>/<c>x-blockdev-insert-medium</c>, which name a drive by backend name or
/// device id, beside QEMU 7.2's stable forms, which take the device id only (those are compared with
/// qemu-system-x86_64 in Block.Cli.Tests' <c>DeviceOracleTests</c>).
/// </summary>
public sealed class RemovableMediaCommandTests
{
    [Fact]
    public async Task The_x_forms_take_a_drive_name_or_a_device_id_and_the_stable_forms_only_an_id()
    {
        await using var fixture = QmpServerFixture.Start();
        await using var client = await fixture.ConnectAsync();
        var backend = fixture.Graph.CreateEmptyBackend(new ImageOpenOptions { ReadOnly = true, Backend = new BlockBackendOptions { Name = "cd0" } });
        backend.AttachDevice(new CdromModel("ide0"));
        await client.ExecuteOkAsync("blockdev-add", new JsonObject { ["driver"] = "null-co", ["node-name"] = "m", ["read-only"] = true });

        var closed = await client.ExecuteAsync("x-blockdev-insert-medium", new JsonObject { ["device"] = "cd0", ["node-name"] = "m" });
        Assert.Equal("Tray of the device is not open", (string)closed["error"]!["desc"]!);
        await client.ExecuteOkAsync("blockdev-open-tray", new JsonObject { ["device"] = "cd0" });
        await client.ExecuteOkAsync("x-blockdev-insert-medium", new JsonObject { ["device"] = "cd0", ["node-name"] = "m" });
        Assert.Equal("m", backend.Root?.NodeName);
        await client.ExecuteOkAsync("x-blockdev-remove-medium", new JsonObject { ["id"] = "ide0" });
        Assert.Null(backend.Root);
        await client.ExecuteOkAsync("x-blockdev-insert-medium", new JsonObject { ["id"] = "ide0", ["node-name"] = "m" });
        await client.ExecuteOkAsync("x-blockdev-remove-medium", new JsonObject { ["device"] = "cd0" });

        var both = await client.ExecuteAsync("x-blockdev-remove-medium", new JsonObject { ["device"] = "cd0", ["id"] = "ide0" });
        Assert.Equal("Need exactly one of 'device' and 'id'", (string)both["error"]!["desc"]!);
        var byName = await client.ExecuteAsync("blockdev-remove-medium", new JsonObject { ["device"] = "cd0" });
        Assert.Equal("Parameter 'id' is missing", (string)byName["error"]!["desc"]!);
        await client.ExecuteOkAsync("blockdev-insert-medium", new JsonObject { ["id"] = "ide0", ["node-name"] = "m" });
        await client.ExecuteOkAsync("blockdev-close-tray", new JsonObject { ["id"] = "ide0" });
        Assert.Equal("m", (string)(await client.ExecuteOkAsync("query-block"))![0]!["inserted"]!["node-name"]!);
    }
}
