using Block.TestSupport;

namespace Block.Rbd.Tests;

/// <summary>blk and qemu-img on the same rbd images of one cluster: same info, map, convert and compare results.</summary>
public sealed class RbdOracleTests(CephCluster cluster) : IClassFixture<CephCluster>, IDisposable
{
    private readonly TempDirectory _dir = new();

    /// <summary>A 64 MiB raw rbd image made by qemu-img, with data in its first and seventh object and the rest unwritten.</summary>
    private string ImageWithData(out byte[] content)
    {
        string name = cluster.Name(CephCluster.NewImageName());
        QemuImg.Run("create", "-q", "-f", "raw", name, "64M").EnsureSuccess("qemu-img create");
        content = new byte[64 << 20];
        var first = Patterns.Random(300_000, 7);
        var later = Patterns.Random(70_000, 8);
        first.CopyTo(content, 100_000);
        later.CopyTo(content, 25 << 20);
        string firstFile = _dir.File("first.bin"), laterFile = _dir.File("later.bin");
        File.WriteAllBytes(firstFile, first);
        File.WriteAllBytes(laterFile, later);
        var io = ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", $"write -s {firstFile} 100000 300000", "-c", $"write -s {laterFile} {25 << 20} 70000", name]);
        Assert.True(io.ExitCode == 0, io.Stderr);
        return name;
    }

    [Fact]
    public void Cluster_starts_within_a_minute() =>
        Assert.True(cluster.StartTime < TimeSpan.FromMinutes(1), $"start took {cluster.StartTime}");

    [Fact]
    public void Info_matches_qemu_img_in_human_and_json_output()
    {
        string name = ImageWithData(out _);
        Assert.Equal(QemuImg.Run("info", name).EnsureSuccess("qemu-img info").Stdout, BlkRunner.Run("info", name).Stdout);
        Assert.Equal(QemuImg.Run("info", "--output=json", name).EnsureSuccess("qemu-img info").Stdout, BlkRunner.Run("info", "--output=json", name).Stdout);
    }

    [Fact]
    public void Map_matches_qemu_img_from_the_object_map()
    {
        string name = ImageWithData(out _);
        string qemuJson = QemuImg.MapJsonText(name);
        Assert.Contains("\"zero\": true", qemuJson);
        Assert.Equal(qemuJson, BlkRunner.Run("map", "--output=json", "-f", "raw", name).Stdout);
        Assert.Equal(QemuImg.MapHumanText(name), BlkRunner.Run("map", "-f", "raw", name).Stdout);
    }

    [Fact]
    public void Convert_from_rbd_gives_qemu_imgs_file()
    {
        string name = ImageWithData(out var content);
        string ours = _dir.File("ours.raw"), theirs = _dir.File("theirs.raw");
        QemuImg.Run("convert", "-O", "raw", name, theirs).EnsureSuccess("qemu-img convert");
        var result = BlkRunner.Run("convert", "-O", "raw", name, ours);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(content, File.ReadAllBytes(theirs));
        Assert.Equal(content, File.ReadAllBytes(ours));
    }

    [Fact]
    public void Convert_to_rbd_creates_an_image_qemu_img_compares_identical()
    {
        var content = Patterns.Random(20 << 20, 11);
        Array.Clear(content, 5 << 20, 6 << 20);
        string source = _dir.File("source.raw");
        File.WriteAllBytes(source, content);
        string ours = cluster.Name(CephCluster.NewImageName("ours")), theirs = cluster.Name(CephCluster.NewImageName("theirs"));
        QemuImg.Run("convert", "-O", "raw", source, theirs).EnsureSuccess("qemu-img convert");
        var result = BlkRunner.Run("convert", "-O", "raw", source, ours);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(0, QemuImg.Compare(source, ours));
        Assert.Equal(0, QemuImg.Compare(theirs, ours));
        Assert.Equal(QemuImg.MapJsonText(theirs), QemuImg.MapJsonText(ours));
    }

    [Fact]
    public void Compare_gives_qemu_imgs_verdicts_and_messages()
    {
        string a = ImageWithData(out var content);
        string file = _dir.File("copy.raw");
        File.WriteAllBytes(file, content);
        var same = QemuImg.Run("compare", "-f", "raw", "-F", "raw", a, file);
        var oursSame = BlkRunner.Run("compare", "-f", "raw", "-F", "raw", a, file);
        Assert.Equal(0, same.ExitCode);
        Assert.Equal((same.ExitCode, same.Stdout), (oursSame.ExitCode, oursSame.Stdout));

        content[30 << 20] ^= 0x5a;
        File.WriteAllBytes(file, content);
        var differ = QemuImg.Run("compare", "-f", "raw", "-F", "raw", a, file);
        var oursDiffer = BlkRunner.Run("compare", "-f", "raw", "-F", "raw", a, file);
        Assert.Equal(1, differ.ExitCode);
        Assert.Equal((differ.ExitCode, differ.Stdout), (oursDiffer.ExitCode, oursDiffer.Stdout));
    }

    [Fact]
    public void Create_with_an_object_size_and_resize_are_seen_by_qemu_img()
    {
        string name = cluster.Name(CephCluster.NewImageName());
        var create = BlkRunner.Run("create", "-f", "raw", "-o", "cluster_size=1M", name, "10M");
        Assert.True(create.ExitCode == 0, create.Stderr);
        var info = QemuImg.Info(name);
        Assert.Equal(10L << 20, (long)info["virtual-size"]!);
        Assert.Equal(1L << 20, (long)info["cluster-size"]!);

        Assert.Equal(0, BlkRunner.Run("resize", "-f", "raw", name, "48M").ExitCode);
        Assert.Equal(48L << 20, (long)QemuImg.Info(name)["virtual-size"]!);
        Assert.Equal(0, BlkRunner.Run("resize", "-f", "raw", "--shrink", name, "8M").ExitCode);
        Assert.Equal(8L << 20, (long)QemuImg.Info(name)["virtual-size"]!);

        var again = BlkRunner.Run("create", "-f", "raw", name, "10M");
        Assert.NotEqual(0, again.ExitCode);
        Assert.Contains("File exists", again.Stderr);
    }

    [Fact]
    public void Write_zeroes_discard_and_flush_reach_the_image_as_qemu_io_reads_it()
    {
        string name = ImageWithData(out _);
        var ours = BlkRunner.Run("io", "-f", "raw", "-c", "write -z 100000 4096", "-c", "write -z -u 0 4M", "-c", "discard 25M 64k", "-c", "flush",
            "-c", "write -P 0x3c 40M 1M", "-c", "flush", name);
        Assert.True(ours.ExitCode == 0, ours.Stderr + ours.Stdout);
        var check = ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", "read -P 0 0 4M", "-c", "read -P 0 25M 64k", "-c", "read -P 0x3c 40M 1M", name]);
        Assert.True(check.ExitCode == 0 && !check.Stdout.Contains("Pattern verification failed", StringComparison.Ordinal), check.Stdout + check.Stderr);
    }

    [Fact]
    public void A_snapshot_opens_read_only_with_the_content_it_had()
    {
        string image = CephCluster.NewImageName();
        string name = cluster.Name(image);
        QemuImg.Run("create", "-q", "-f", "raw", name, "8M").EnsureSuccess("qemu-img create");
        Assert.Equal(0, BlkRunner.Run("io", "-f", "raw", "-c", "write -P 0x11 0 1M", name).ExitCode);
        cluster.Rbd("snap", "create", $"{image}@before");
        Assert.Equal(0, BlkRunner.Run("io", "-f", "raw", "-c", "write -P 0x22 0 1M", name).ExitCode);

        string snap = $"rbd:{CephCluster.Pool}/{image}@before:conf={cluster.Conf}";
        var read = BlkRunner.Run("io", "-r", "-f", "raw", "-c", "read -P 0x11 0 1M", snap);
        Assert.True(read.ExitCode == 0 && !read.Stdout.Contains("failed", StringComparison.Ordinal), read.Stdout + read.Stderr);
        var write = BlkRunner.Run("io", "-f", "raw", "-c", "write 0 512", snap);
        Assert.NotEqual(0, write.ExitCode);
        Assert.Contains("rbd snapshots are read-only", write.Stderr);
    }

    [Fact]
    public void Blockdev_options_with_a_key_secret_and_monitor_list_open_the_image()
    {
        string image = CephCluster.NewImageName();
        QemuImg.Run("create", "-q", "-f", "raw", cluster.Name(image), "4M").EnsureSuccess("qemu-img create");
        // No conf file: the monitors, the user and the key come from the options alone.
        string json = "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"rbd\",\"pool\":\"rbd\",\"image\":\"" + image + "\",\"user\":\"admin\","
            + "\"key-secret\":\"key0\",\"auth-client-required\":[\"cephx\"],\"server\":[{\"host\":\"127.0.0.1\",\"port\":\"" + cluster.MonPort + "\"}]}}";
        string secret = $"secret,id=key0,format=base64,data={cluster.AdminKey}";
        var ours = BlkRunner.Run("io", "--object", secret, "-c", "write -P 0x77 0 64k", "-c", "read -P 0x77 0 64k", json);
        Assert.True(ours.ExitCode == 0 && !ours.Stdout.Contains("failed", StringComparison.Ordinal), ours.Stdout + ours.Stderr);
        var qemu = ProcessRunner.Run(QemuIo.Path, ["--object", secret, "-c", "read -P 0x77 0 64k", json]);
        Assert.True(qemu.ExitCode == 0 && !qemu.Stdout.Contains("failed", StringComparison.Ordinal), qemu.Stdout + qemu.Stderr);
    }

    [Fact]
    public void A_missing_image_fails_with_qemus_message()
    {
        string name = cluster.Name("no-such-image");
        var qemu = QemuImg.Run("info", name);
        var ours = BlkRunner.Run("info", name);
        Assert.NotEqual(0, qemu.ExitCode);
        Assert.NotEqual(0, ours.ExitCode);
        Assert.Contains("No such file or directory", ours.Stderr);
    }

    public void Dispose() => _dir.Dispose();
}
