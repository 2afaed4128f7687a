using Block.Graph;
using Block.TestSupport;
using static Block.Qcow2.Tests.EncryptedImages;

namespace Block.Qcow2.Tests;

/// <summary>
/// QEMU 2.8's <c>block_passwd</c> through the library (<see cref="BlockGraph.SetPasswordAsync"/>): a legacy AES image
/// opened with its key to come stays inserted but unusable, <c>encryption_key_missing</c> in its <c>query-block</c>
/// view and refused by <c>cont</c>, until the password is given; then it reads what qemu-io wrote with that password.
/// A node that is not encrypted gets 2.8's error.
/// </summary>
public class Qcow2BlockPasswdTests
{
    private static ValueTask<BlockBackend> OpenKeyLaterAsync(BlockGraph graph, string path, string name) =>
        graph.OpenImageAsync(path, new ImageOpenOptions { Format = "qcow2", KeyLater = true, Backend = new BlockBackendOptions { Name = name } });

    [Fact]
    public async Task A_legacy_aes_image_without_its_key_is_unusable_until_block_passwd_gives_it()
    {
        using var dir = new TempDirectory();
        string path = dir.File("aes.qcow2");
        QemuCreate(path, "1M", AesOptions(), "12345");
        QemuIo(path, ["write -P 0x5c 64k 64k"], "12345");

        await using var graph = Qcow2Images.NewGraph();
        var backend = await OpenKeyLaterAsync(graph, path, "drive0");
        var inserted = backend.GetInfo().Inserted!;
        Assert.True(inserted.Encrypted);
        Assert.True(inserted.EncryptionKeyMissing);

        var read = await Assert.ThrowsAsync<BlockException>(async () => await backend.ReadAsync(64 << 10, new byte[4096]));
        Assert.Equal(Errno.EIO, read.Errno);
        var write = await Assert.ThrowsAsync<BlockException>(async () => await backend.WriteAsync(0, Patterns.Fill(4096, 0x11)));
        Assert.Equal(Errno.EIO, write.Errno);
        var cont = Assert.Throws<DeviceEncryptedException>(graph.Continue);
        Assert.Equal($"'drive0' ({path}) is encrypted", cont.Message);
        Assert.Equal(QmpErrorClass.DeviceEncrypted, cont.ErrorClass);

        await graph.SetPasswordAsync("drive0", null, "12345");
        Assert.False(backend.GetInfo().Inserted!.EncryptionKeyMissing);
        graph.Continue();
        var data = new byte[64 << 10];
        await backend.ReadAsync(64 << 10, data);
        Assert.All(data, b => Assert.Equal(0x5c, b));
        await backend.WriteAsync(0, Patterns.Fill(4096, 0x11));
        await graph.DisposeAsync();

        // The refused write allocated nothing; the one after the key is what qemu-io reads with the same password.
        AssertQemuCheckClean(path, "12345");
        Assert.Contains("read 4096/4096", QemuIo(path, ["read -P 0x11 0 4k", "read -P 0x5c 64k 64k"], "12345"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Block_passwd_by_node_name_replaces_a_key_and_a_plain_node_is_not_encrypted_with_2_8s_text()
    {
        using var dir = new TempDirectory();
        string path = dir.File("aes.qcow2"), plain = dir.File("plain.qcow2");
        QemuCreate(path, "1M", AesOptions(), "right");
        QemuIo(path, ["write -P 0x21 0 4k"], "right");
        QemuImg.Create("qcow2", plain, "1M");

        await using var graph = Qcow2Images.NewGraph();
        var backend = await OpenKeyLaterAsync(graph, path, "drive0");
        var other = await OpenKeyLaterAsync(graph, plain, "drive1");

        // Any password keys a legacy AES image (nothing tells a wrong one); a second block_passwd replaces it.
        await graph.SetPasswordAsync(null, backend.Root!.NodeName, "wrong");
        var data = new byte[4096];
        await backend.ReadAsync(0, data);
        Assert.Contains(data, b => b != 0x21);
        await graph.SetPasswordAsync(null, backend.Root!.NodeName, "right");
        await backend.ReadAsync(0, data);
        Assert.All(data, b => Assert.Equal(0x21, b));

        var byDevice = await Assert.ThrowsAsync<BlockException>(async () => await graph.SetPasswordAsync("drive1", null, "x"));
        Assert.Equal("Node 'drive1' is not encrypted", byDevice.Message);
        var byNode = await Assert.ThrowsAsync<BlockException>(async () => await graph.SetPasswordAsync(null, other.Root!.PrimaryChild!.Node.NodeName, "x"));
        Assert.Equal($"Node '{other.Root!.PrimaryChild!.Node.NodeName}' is not encrypted", byNode.Message);
        await Assert.ThrowsAsync<BlockNotFoundException>(async () => await graph.SetPasswordAsync("nosuch", null, "x"));
    }
}
