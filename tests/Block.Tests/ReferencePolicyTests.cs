using Block.Graph;
using Block.TestSupport;

namespace Block.Tests;

/// <summary>Files named inside images are resolved as QEMU resolves them and opened only if the policy allows.</summary>
public class ReferencePolicyTests
{
    [Fact]
    public void Deny_refuses_everything()
    {
        var e = Assert.Throws<BlockException>(() => ImageReferencePolicy.Deny.Check("/tmp/base.qcow2", "/tmp/top.qcow2"));
        Assert.Equal(Errno.EACCES, e.Errno);
    }

    [Fact]
    public void Restrict_to_a_directory_refuses_escapes_and_links_out_of_it()
    {
        using var dir = new TempDirectory();
        using var outside = new TempDirectory();
        var policy = ImageReferencePolicy.RestrictTo(dir.Path);
        policy.Check(dir.File("base.img"), "top");
        Assert.Throws<BlockException>(() => policy.Check(Path.Combine(dir.Path, "..", "etc", "shadow"), "top"));
        string secret = outside.File("secret");
        File.WriteAllText(secret, "x");
        string link = dir.File("innocent.img");
        File.CreateSymbolicLink(link, secret);
        Assert.Throws<BlockException>(() => policy.Check(link, "top"));
        Assert.False(policy.AllowProbing);
    }

    [Fact]
    public async Task Relative_references_resolve_against_the_image_directory()
    {
        using var dir = new TempDirectory();
        string path = dir.File("top.img");
        TestImages.CreateZeroFile(path, 4096);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = true });
        var node = backend.Root!;
        Assert.Equal(dir.File("base.img"), node.ResolveReference("base.img"));
        Assert.Equal("/abs/base.img", node.ResolveReference("/abs/base.img"));
        Assert.Equal("nbd://host/export", node.ResolveReference("nbd://host/export"));
        Assert.Equal("json:{}", node.ResolveReference("json:{}"));
    }
}
