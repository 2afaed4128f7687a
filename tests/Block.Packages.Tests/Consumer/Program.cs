// Uses the packages as a .NET hypervisor project would: a qcow2 image written and read back, a Stream over it, and a
// vmdk, a vdi and a LUKS image made and used, and the qcow2 disk served over NBD and read through the nbd driver. Prints one line per check; any failure throws (exit code not 0).
using System.Text.Json.Nodes;
using Block.Crypto;
using Block.Drivers;
using Block.Formats;
using Block.Graph;
using Block.Nbd.Client;
using Block.Nbd.Server;
using Block.Qcow2;
using Block.Streams;
using Block.Vmdk;

string dir = args[0];
var drivers = DriverRegistry.CreateDefault().AddQcow2().AddVmdk().AddFormats().AddLuks().AddNbd();
await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = drivers });
graph.Secrets.Add("key", "correct horse", null, null);

var pattern = new byte[64 * 1024];
new Random(42).NextBytes(pattern);

// qcow2: create, write, read back.
string qcow2 = Path.Combine(dir, "disk.qcow2");
await graph.CreateImageAsync("qcow2", qcow2, new Dictionary<string, string> { ["size"] = "64M" });
var disk = await graph.OpenImageAsync(qcow2, new ImageOpenOptions { Format = "qcow2" });
await disk.WriteAsync(1 << 20, pattern);
await disk.FlushAsync();
var back = new byte[pattern.Length];
await disk.ReadAsync(1 << 20, back);
Check(back.AsSpan().SequenceEqual(pattern), "qcow2 reads back what was written");
Console.WriteLine($"qcow2: {disk.Length} bytes, 64 KiB written and read back");

// A Stream over the same backend: seek, read, write, read again through the backend.
await using (var stream = new BlockStream(disk))
{
    stream.Position = 1 << 20;
    var viaStream = new byte[pattern.Length];
    stream.ReadExactly(viaStream);
    Check(viaStream.AsSpan().SequenceEqual(pattern), "the stream reads what the backend wrote");
    stream.Position = 8 << 20;
    await stream.WriteAsync(pattern.AsMemory(0, 4096));
    await stream.FlushAsync();
}
await disk.ReadAsync(8 << 20, back.AsMemory(0, 4096));
Check(back.AsSpan(0, 4096).SequenceEqual(pattern.AsSpan(0, 4096)), "the backend reads what the stream wrote");
Console.WriteLine("stream: read and written at any position");

// vmdk: create a streamOptimized and a monolithicSparse image, write and read one.
foreach (string subformat in new[] { "monolithicSparse", "streamOptimized" })
{
    string vmdk = Path.Combine(dir, subformat + ".vmdk");
    await graph.CreateImageAsync("vmdk", vmdk, new Dictionary<string, string> { ["size"] = "32M", ["subformat"] = subformat });
    var v = await graph.OpenImageAsync(vmdk, new ImageOpenOptions { Format = "vmdk" });
    await v.WriteAsync(0, pattern);
    await v.FlushAsync();
    await v.ReadAsync(0, back);
    Check(back.AsSpan().SequenceEqual(pattern), $"vmdk {subformat} reads back what was written");
    await v.DisposeAsync();
}
Console.WriteLine("vmdk: monolithicSparse and streamOptimized made, written and read back");

// vdi: create a dynamic image, write and read it back.
string vdi = Path.Combine(dir, "disk.vdi");
await graph.CreateImageAsync("vdi", vdi, new Dictionary<string, string> { ["size"] = "32M" });
await using (var v = await graph.OpenImageAsync(vdi, new ImageOpenOptions { Format = "vdi" }))
{
    await v.WriteAsync(3 << 20, pattern);
    await v.FlushAsync();
    await v.ReadAsync(3 << 20, back);
    Check(back.AsSpan().SequenceEqual(pattern), "vdi reads back what was written");
}
Console.WriteLine("vdi: made, written and read back");

// LUKS: create with a secret, open with it, write and read back through the cipher.
string luks = Path.Combine(dir, "disk.luks");
await graph.CreateImageAsync("luks", luks, new Dictionary<string, string> { ["size"] = "16M", ["key-secret"] = "key", ["iter-time"] = "10" });
var encrypted = await graph.OpenImageAsync(luks, new ImageOpenOptions
{
    Format = "luks",
    ExtraOptions = new JsonObject { ["key-secret"] = "key" },
});
await encrypted.WriteAsync(0, pattern);
await encrypted.FlushAsync();
await encrypted.ReadAsync(0, back);
Check(back.AsSpan().SequenceEqual(pattern), "luks reads back what was written");
var raw = File.ReadAllBytes(luks);
Check(raw.AsSpan().IndexOf(pattern.AsSpan(0, 512)) < 0, "luks stores no plaintext");
Console.WriteLine("luks: made with a secret, unlocked, written and read back encrypted");

// NBD: serve the qcow2 disk on a unix socket, open it through the nbd driver, read and write through the export.
string socket = Path.Combine(dir, "nbd.sock");
await using (var server = new NbdServer())
{
    server.AddExport(new NbdExport("disk", disk, writable: true));
    server.Listen(NbdServer.BindUnix(socket), socket);
    await using var remote = await graph.OpenImageAsync($"nbd+unix:///disk?socket={socket}", new ImageOpenOptions { Format = "raw" });
    Check(remote.Length == disk.Length, "the export has the disk's size");
    await remote.ReadAsync(1 << 20, back);
    Check(back.AsSpan().SequenceEqual(pattern), "the export reads what was written to the disk");
    await remote.WriteAsync(16 << 20, pattern);
    await remote.FlushAsync();
}
await disk.ReadAsync(16 << 20, back);
Check(back.AsSpan().SequenceEqual(pattern), "the disk reads what was written through the export");
Console.WriteLine("nbd: the qcow2 disk served and read back, written through the export");

static void Check(bool condition, string what)
{
    if (!condition)
        throw new InvalidOperationException("failed: " + what);
}
