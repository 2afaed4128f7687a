namespace Block.Crypto.Tests;

/// <summary>
/// Data written by one tool reads back with the other, for the cipher suites both offer: qemu-img creates and
/// qemu-io writes, <c>blk io</c> reads; <c>blk</c> creates and writes, qemu-io reads. Writes include unaligned ones
/// (read-modify-write of whole sectors) and a sector past 2 TiB's IV wrap for <c>plain</c> would be too slow, so the
/// IV numbering is checked at several offsets instead.
/// </summary>
public class LuksInteropTests
{
    public static TheoryData<string> Suites() => new()
    {
        "",
        "cipher-alg=aes-128,hash-alg=sha1",
        "cipher-alg=aes-192,ivgen-alg=plain",
        "cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256,hash-alg=sha512",
        "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=plain64,hash-alg=sha384",
        "cipher-alg=aes-256,cipher-mode=ecb",
        "cipher-mode=xts,ivgen-alg=essiv",
        "cipher-alg=aes-128,hash-alg=md5,ivgen-hash-alg=sha1",
    };

    private static readonly string[] s_writesA = ["write -P 0x11 0 64k", "write -P 0x22 1000 3000", "write -P 0x33 8M 1M", "write -P 0x44 16773120 4096"];
    private static readonly string[] s_readsA = ["read -P 0x11 0 1000", "read -P 0x22 1000 3000", "read -P 0x11 4000 61536", "read -P 0x33 8M 1M", "read -P 0x44 16773120 4096"];
    private static readonly string[] s_writesB = ["write -P 0xa5 512 512", "write -P 0x5a 5000 70000", "write -z 4M 64k", "write -P 0x77 12M 2M"];
    private static readonly string[] s_readsB = ["read -P 0xa5 512 512", "read -P 0x5a 5000 70000", "read -P 0 4M 64k", "read -P 0x77 12M 2M"];

    [Theory]
    [MemberData(nameof(Suites))]
    public void What_qemu_writes_blk_reads(string suite)
    {
        using var dir = new TestSupport.TempDirectory();
        string path = dir.File("q.luks");
        Luks.QemuCreate(path, suite);
        Luks.QemuIo(path, s_writesA);
        Luks.BlkIo(path, s_readsA);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void What_blk_writes_qemu_reads(string suite)
    {
        using var dir = new TestSupport.TempDirectory();
        string path = dir.File("b.luks");
        Luks.BlkCreate(path, suite);
        Luks.BlkIo(path, s_writesB);
        Luks.QemuIo(path, s_readsB);
        // And back again on the image blk made.
        Luks.QemuIo(path, s_writesA);
        Luks.BlkIo(path, s_readsA);
    }
}
