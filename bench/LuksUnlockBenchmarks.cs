using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Block.Crypto;
using Block.Crypto.Driver;
using Block.Crypto.Kdf;
using Block.Crypto.Luks;
using Block.Drivers;
using Block.Drivers.File;
using Block.Graph;
using Block.Io;

namespace Block.Bench;

/// <summary>
/// Unlocking a LUKS image that <c>qemu-img create -f luks -o iter-time=100</c> made on this machine (aes-256-xts, so a
/// 64-byte slot key from PBKDF2-HMAC-SHA-256, and a 20-byte master-key digest): the whole open with one 512-byte read,
/// as <c>blk io</c> and <c>qemu-io</c> do it (<c>bench/luks-compare.sh</c> times those two side by side), and its
/// two PBKDF2 runs alone, ours against the platform's (OpenSSL's <c>PKCS5_PBKDF2_HMAC</c>, what Block ran before).
/// The image is made once, in the temporary directory, and kept (delete it for a new calibration).
/// </summary>
[MemoryDiagnoser]
public class LuksUnlockBenchmarks
{
    private const string Passphrase = "benchmark";

    private readonly byte[] _slotKey = new byte[64];
    private readonly byte[] _digest = new byte[LuksHeader.DigestSize];
    private string _path = null!;
    private LuksHeader _header = null!;
    private BlockGraph _graph = null!;
    private AlignedBuffer _sector = null!;

    [GlobalSetup]
    public void Setup()
    {
        // Made once and kept, so that every benchmark process unlocks the same iteration counts.
        _path = Path.Combine(Path.GetTempPath(), "blk-bench-unlock.luks");
        // qemu-img's own calibration now and then reads no CPU time and gives up: ask again.
        for (int attempt = 0; !File.Exists(_path) && attempt < 10; attempt++)
        {
            using var p = Process.Start("qemu-img", ["create", "-q", "-f", "luks", "--object", $"secret,id=s0,data={Passphrase}",
                "-o", "key-secret=s0,iter-time=100", _path, "256M"])!;
            p.WaitForExit();
        }
        if (!File.Exists(_path))
            throw new InvalidOperationException("qemu-img create -f luks failed (install qemu-utils)");
        var raw = new byte[LuksHeader.Size];
        using (var f = File.OpenRead(_path))
            f.ReadExactly(raw);
        _header = LuksHeader.Parse(raw, new FileInfo(_path).Length);
        Console.WriteLine($"// key slot: {_header.Slots[0].Iterations} iterations, master-key digest: {_header.MasterKeyIterations}");
        _graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddLuks() });
        _graph.Secrets.Add("s0", Passphrase, null, null);
        _sector = AlignedBuffer.Allocate(512);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _sector.Dispose();
    }

    /// <summary>Open the image with its secret and read its first sector, then close it: <c>blk io -c 'read 0 512'</c>.</summary>
    [Benchmark]
    public async Task OpenAndReadOneSector()
    {
        var node = await _graph.AddNodeAsync(new BlockdevOptionsLuks
        {
            NodeName = "unlock",
            KeySecret = "s0",
            File = new BlockdevOptionsFile { Filename = _path, Aio = Qapi.BlockdevAioOptions.Inline },
        });
        await node.ReadAsync(0, _sector.Memory);
        await _graph.DeleteNodeAsync("unlock");
    }

    /// <summary>The key slot's PBKDF2 (64 bytes: two blocks, on two cores).</summary>
    [Benchmark]
    public void KeySlotPbkdf2() =>
        Pbkdf2.Derive(_header.Hash, "benchmark"u8, _header.Slots[0].Salt.Span, _header.Slots[0].Iterations, _slotKey);

    /// <summary>The key slot's PBKDF2 with both blocks on the calling thread (what one core does).</summary>
    [Benchmark]
    public void KeySlotPbkdf2OneCore() =>
        Pbkdf2.DeriveOnOneCore(_header.Hash, "benchmark"u8, _header.Slots[0].Salt.Span, _header.Slots[0].Iterations, _slotKey);

    /// <summary>The key slot's PBKDF2 through the platform (<c>Rfc2898DeriveBytes</c>, OpenSSL): Block's PBKDF2 before.</summary>
    [Benchmark(Baseline = true)]
    public void KeySlotPbkdf2Platform() =>
        Pbkdf2.DeriveWithPlatform(_header.Hash, "benchmark"u8, _header.Slots[0].Salt.Span, _header.Slots[0].Iterations, _slotKey);

    /// <summary>The master-key digest's PBKDF2 (20 bytes, one block).</summary>
    [Benchmark]
    public void MasterKeyDigestPbkdf2() =>
        Pbkdf2.Derive(_header.Hash, _slotKey, _header.MasterKeySalt.Span, _header.MasterKeyIterations, _digest);
}
