using Block.Graph;
using Block.TestSupport;

namespace Block.Vmdk.Tests;

/// <summary>
/// Chains through <c>parentFileNameHint</c>: reads fall through to the parent, partial writes copy the rest of the
/// grain from it, the CID changes on the first write after each open, and a parent whose CID no longer matches the
/// child's <c>parentCID</c> is refused as QEMU refuses it (iotest 225).
/// </summary>
public class BackingChainTests
{
    private static (string Base, string Child) Chain(TempDirectory dir, string childSubformat = "monolithicSparse")
    {
        string baseImage = dir.File("base.vmdk"), child = dir.File("child.vmdk");
        Vmdk.QemuCreate(baseImage, "4M");
        Vmdk.QemuIo(baseImage, "write -P 0x11 0 4M");
        QemuImg.Run("create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", "-o", $"subformat={childSubformat}", child).EnsureSuccess("create child");
        return (baseImage, child);
    }

    [Fact]
    public void A_chain_qemu_io_wrote_reads_identically_and_maps_with_depth()
    {
        using var dir = new TempDirectory();
        var (_, child) = Chain(dir);
        Vmdk.QemuIo(child, "write -P 0x22 4k 4k", "write -P 0x33 1M 64k", "write -P 0x44 3000000 5000");
        byte[] expected = InteropTests.QemuRaw(dir, child);
        using (var graph = Vmdk.Graph())
        {
            var backend = Vmdk.Open(graph, child, readOnly: true);
            Assert.Equal(expected, BlockIo.Read(backend, 0, expected.Length));
        }
        InteropTests.AssertSameOutput(child, "map", "--output=json");
        InteropTests.AssertSameOutput(child, "map");
        InteropTests.AssertSameOutput(child, "info", "--output=json");
        InteropTests.AssertSameOutput(child, "info", "--backing-chain", "--output=json");
        InteropTests.AssertSameOutput(child, "info", "--backing-chain");
    }

    [Fact]
    public void Partial_writes_to_a_child_copy_the_rest_of_the_grain_from_the_parent()
    {
        using var dir = new TempDirectory();
        var (_, child) = Chain(dir);
        using (var graph = Vmdk.Graph())
        {
            var backend = Vmdk.Open(graph, child);
            BlockIo.Write(backend, 70000, Patterns.Fill(1000, 0x55));
            BlockIo.Write(backend, 2 * 65536 - 512, Patterns.Fill(1024, 0x66));
        }
        Vmdk.QemuIo(child, "read -P 0x11 64k 4464", "read -P 0x55 70000 1000", "read -P 0x11 71000 59560",
            "read -P 0x66 130560 1024", "read -P 0x11 131584 65024");
        Vmdk.AssertCheckClean(child);
        InteropTests.AssertSameOutput(child, "map", "--output=json");
    }

    [Fact]
    public void The_cid_changes_once_on_the_first_write_after_each_open_and_nothing_else_in_the_descriptor()
    {
        using var dir = new TempDirectory();
        string image = dir.File("d.vmdk");
        Vmdk.QemuCreate(image, "1M", "subformat=monolithicFlat");
        string before = File.ReadAllText(image);
        uint cid0, cid1, cid2;
        using (var graph = Vmdk.Graph())
        {
            var backend = Vmdk.Open(graph, image);
            cid0 = Vmdk.Info(backend).Cid;
            _ = BlockIo.Read(backend, 0, 512);
            Assert.Equal(cid0, Vmdk.Info(backend).Cid);
            BlockIo.Write(backend, 0, Patterns.Fill(512, 1));
            cid1 = Vmdk.Info(backend).Cid;
            BlockIo.Write(backend, 512, Patterns.Fill(512, 2));
            Assert.Equal(cid1, Vmdk.Info(backend).Cid);
        }
        Assert.NotEqual(cid0, cid1);
        string after = File.ReadAllText(image).TrimEnd('\0');
        Assert.Equal(Lines(before).Where(l => !l.StartsWith("CID=", StringComparison.Ordinal)), Lines(after).Where(l => !l.StartsWith("CID=", StringComparison.Ordinal)));
        Assert.Contains($"CID={cid1:x}\n", after);
        using (var graph = Vmdk.Graph())
        {
            var backend = Vmdk.Open(graph, image);
            Assert.Equal(cid1, Vmdk.Info(backend).Cid);
            BlockIo.Write(backend, 0, Patterns.Fill(512, 3));
            cid2 = Vmdk.Info(backend).Cid;
        }
        Assert.NotEqual(cid1, cid2);
        Assert.Equal(cid2, (uint)QemuImg.Info(image, "vmdk")["format-specific"]!["data"]!["cid"]!.GetValue<long>());
    }

    private static string[] Lines(string text) => text.Split('\n');

    [Fact]
    public void A_parent_modified_after_the_child_was_made_is_refused_as_qemu_refuses_it()
    {
        using var dir = new TempDirectory();
        var (baseImage, child) = Chain(dir);
        Vmdk.QemuIo(child, "write -P 0x22 0 64k");
        // Writing to the parent gives it a new CID: the child's parentCID no longer matches.
        using (var graph = Vmdk.Graph())
            BlockIo.Write(Vmdk.Open(graph, baseImage), 1 << 20, Patterns.Fill(512, 0x99));

        using (var graph = Vmdk.Graph())
        {
            var backend = Vmdk.Open(graph, child, readOnly: true);
            Assert.Equal(Patterns.Fill(65536, 0x22), BlockIo.Read(backend, 0, 65536));
            var e = Assert.Throws<BlockException>(() => BlockIo.Read(backend, 65536, 512));
            Assert.Equal(Errno.EINVAL, e.Errno);
        }
        var q = QemuIo.Run(child, "vmdk", "read -P 0x22 0 64k", "read 64k 512");
        var b = BlkRunner.Run("io", "-f", "vmdk", "-c", "read -P 0x22 0 64k", "-c", "read 64k 512", child);
        Assert.Contains("read failed: Invalid argument", q.Stdout);
        Assert.Equal(StripTimes(q.Stdout), StripTimes(b.Stdout));
        Assert.Equal(q.ExitCode, b.ExitCode);
    }

    [Fact]
    public void Blk_made_children_are_read_by_qemu_through_their_parent()
    {
        using var dir = new TempDirectory();
        string baseImage = dir.File("base.vmdk");
        Vmdk.QemuCreate(baseImage, "2M");
        Vmdk.QemuIo(baseImage, "write -P 0x11 0 2M");
        Assert.Equal(0, BlkRunner.Run("create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", dir.File("child.vmdk")).ExitCode);
        Assert.Equal(0, BlkRunner.Run("io", "-f", "vmdk", "-c", "write -P 0x22 100000 5000", dir.File("child.vmdk")).ExitCode);
        Vmdk.QemuIo(dir.File("child.vmdk"), "read -P 0x11 0 100000", "read -P 0x22 100000 5000", "read -P 0x11 105000 1992152");
        Vmdk.AssertCheckClean(dir.File("child.vmdk"));
        InteropTests.AssertSameOutput(dir.File("child.vmdk"), "map", "--output=json");
    }

    [Fact]
    public void Backing_can_be_replaced_or_dropped_by_options()
    {
        using var dir = new TempDirectory();
        var (_, child) = Chain(dir);
        var r = BlkRunner.Run("io", "--image-opts", "-c", "read -P 0 0 4k", $"driver=vmdk,file.filename={child},backing=");
        Assert.True(r.ExitCode == 0 && !r.Stdout.Contains("failed", StringComparison.Ordinal), r.Stdout + r.Stderr);
        r = BlkRunner.Run("io", "--image-opts", "-c", "read -P 0x11 0 4k", $"driver=vmdk,file.filename={child}");
        Assert.True(r.ExitCode == 0 && !r.Stdout.Contains("failed", StringComparison.Ordinal), r.Stdout + r.Stderr);
    }

    [Fact]
    public void The_parent_hint_is_resolved_against_the_childs_directory_and_checked_by_the_reference_policy()
    {
        using var dir = new TempDirectory();
        using var other = new TempDirectory();
        var (_, child) = Chain(dir);
        using (var graph = Vmdk.Graph(ImageReferencePolicy.RestrictTo(dir.Path)))
            Assert.Equal(Patterns.Fill(512, 0x11), BlockIo.Read(Vmdk.Open(graph, child, readOnly: true), 0, 512));
        using (var graph = Vmdk.Graph(ImageReferencePolicy.RestrictTo(other.Path)))
        {
            var e = Assert.ThrowsAny<BlockException>(() => Vmdk.Open(graph, child, readOnly: true));
            Assert.Equal(Errno.EACCES, e.Errno);
        }
        using (var graph = Vmdk.Graph(ImageReferencePolicy.Deny))
            Assert.ThrowsAny<BlockException>(() => Vmdk.Open(graph, child, readOnly: true));
    }

    private static string StripTimes(string text) =>
        string.Join('\n', text.Split('\n').Where(l => !l.Contains("ops/sec", StringComparison.Ordinal)));

    [Fact]
    public void A_missing_parent_fails_the_open_naming_it()
    {
        using var dir = new TempDirectory();
        var (baseImage, child) = Chain(dir);
        File.Delete(baseImage);
        var q = QemuIo.Run(child, "vmdk", "read 0 512");
        var b = BlkRunner.Run("io", "-f", "vmdk", "-c", "read 0 512", child);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Contains("can't open device", q.Stderr);
        Assert.Contains("base.vmdk", b.Stderr);
    }
}
