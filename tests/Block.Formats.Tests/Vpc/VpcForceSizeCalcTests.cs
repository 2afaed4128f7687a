using System.Text;
using Block.TestSupport;

namespace Block.Formats.Tests.Vpc;

/// <summary>
/// The runtime option <c>force_size_calc=chs|current_size</c> (QEMU 7.2's vpc driver): it overrides the size rule by
/// creator, except that the maximum geometry always means the footer's size; <c>info</c> (text and JSON, whose
/// <c>json:</c> filename names the option) and the content read equal qemu-img's on images of several creators.
/// </summary>
public class VpcForceSizeCalcTests
{
    public static TheoryData<string, string> Creators()
    {
        var data = new TheoryData<string, string>();
        foreach (string creator in new[] { "qemu", "win ", "vpc ", "d2v ", "tap\0", "CTXS", "qem2" })
        {
            data.Add(creator, "subformat=dynamic");
            data.Add(creator, "subformat=fixed");
        }
        return data;
    }

    /// <summary>A 10 MiB disk whose footer states 10 MiB exactly (its geometry gives 10514432 bytes), by <paramref name="creator"/>.</summary>
    private static string Image(TempDirectory dir, string creator, string options)
    {
        string image = dir.File("c.vhd");
        QemuImg.Create("vpc", image, "10M", options);
        Images.QemuIo(image, "vpc", "write -P 0x77 10220k 28k", "write -P 0x78 0 4k");
        foreach (long footer in options.Contains("fixed", StringComparison.Ordinal) ? new long[] { -1 } : [0, -1])
        {
            VpcFiles.PatchFooter(image, footer, 28, Encoding.Latin1.GetBytes(creator));
            VpcFiles.PatchFooter(image, footer, 48, VpcFiles.Be64(10 << 20));
        }
        return image;
    }

    [Theory]
    [MemberData(nameof(Creators))]
    public void Info_and_content_equal_qemu_img_with_each_size_rule(string creator, string options)
    {
        using var dir = new TempDirectory();
        string image = Image(dir, creator, options);
        foreach (string mode in new[] { "chs", "current_size" })
        {
            string opts = $"driver=vpc,force_size_calc={mode},file.filename={image}";
            Images.AssertSameOutput("info", "--image-opts", opts);
            Images.AssertSameOutput("info", "--output=json", "--image-opts", opts);
            string ours = dir.File($"b-{mode}.raw"), theirs = dir.File($"q-{mode}.raw");
            QemuImg.Run("convert", "--image-opts", opts, "-O", "raw", theirs).EnsureSuccess("qemu-img convert");
            BlkRunner.Run("convert", "--image-opts", opts, "-O", "raw", ours).EnsureSuccess("blk convert");
            Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
            Assert.Equal(mode == "chs" ? 10514432 : 10 << 20, new FileInfo(ours).Length);
        }
    }

    [Fact]
    public void The_maximum_geometry_means_the_footers_size_even_with_chs()
    {
        using var dir = new TempDirectory();
        string image = Image(dir, "win ", "subformat=dynamic");
        foreach (long footer in new long[] { 0, -1 })
            VpcFiles.PatchFooter(image, footer, 56, Convert.FromHexString("ffff10ff"));
        Images.AssertSameOutput("info", "--image-opts", $"driver=vpc,force_size_calc=chs,file.filename={image}");
    }

    [Fact]
    public void An_unknown_mode_is_refused_with_qemus_message()
    {
        using var dir = new TempDirectory();
        string image = Image(dir, "qemu", "subformat=dynamic");
        Images.AssertSameOutput("info", "--image-opts", $"driver=vpc,force_size_calc=bogus,file.filename={image}");
        Images.AssertSameOutput("info", $"json:{{\"driver\": \"vpc\", \"force_size_calc\": \"chs\", \"file\": {{\"driver\": \"file\", \"filename\": \"{image}\"}}}}");
    }
}
