using System.Globalization;
using Block.Drivers.File;
using Block.Formats.Parallels;
using Block.TestSupport;

namespace Block.Formats.Tests.Parallels;

/// <summary>
/// The runtime options <c>prealloc-mode</c> (<c>falloc</c>, <c>truncate</c>) and <c>prealloc-size</c> of QEMU 7.2's
/// parallels driver: while an image is open, its file grows by the preallocation past the clusters a write needs (at
/// least a cluster, whole sectors), as qemu-io grows it; a crash then leaves the preallocation, which
/// <c>check</c> reports as qemu-img does; a clean close cuts it off and the image checks clean.
/// </summary>
public class ParallelsPreallocTests
{
    /// <summary>Writes that allocate one cluster, one inside the preallocation, two, and five (1 MiB clusters).</summary>
    private static readonly (long Offset, int Length)[] Writes = [(0, 4096), (300 << 20, 4096), (10 << 20, 2 << 20), (20 << 20, 5 << 20)];

    [Theory]
    [InlineData(null, null)]
    [InlineData("truncate", null)]
    [InlineData("falloc", 1L << 20)]
    [InlineData("truncate", 3L << 20)]
    [InlineData(null, 0L)]
    [InlineData(null, 100_000L)]
    [InlineData(null, 1536L << 10)]
    public async Task The_file_grows_while_open_as_qemu_io_grows_it_and_checks_as_qemu_img_checks_it(string? mode, long? size)
    {
        using var dir = new TempDirectory();
        string options = string.Join(',', new[] { mode is null ? null : "prealloc-mode=" + mode, size is null ? null : "prealloc-size=" + size.Value.ToString(CultureInfo.InvariantCulture) }.Where(o => o != null));

        // QEMU's lengths: the first i writes, then abort() before the close could cut the file.
        var theirs = new List<long>();
        string crashedTheirs = "";
        for (int i = 1; i <= Writes.Length; i++)
        {
            crashedTheirs = dir.File($"q{i}.prl");
            QemuImg.Create("parallels", crashedTheirs, "512M");
            var args = new List<string> { "--image-opts" };
            foreach (var (offset, length) in Writes.Take(i))
                args.AddRange(["-c", $"write -P 0x5a {offset} {length}"]);
            args.AddRange(["-c", "abort", $"driver=parallels,file.filename={crashedTheirs}" + (options.Length > 0 ? "," + options : "")]);
            ProcessRunner.Run(QemuIo.Path, args);
            theirs.Add(new FileInfo(crashedTheirs).Length);
        }

        string image = dir.File("b.prl"), crashedOurs = dir.File("b-crashed.prl");
        QemuImg.Create("parallels", image, "512M");
        var ours = new List<long>();
        using (var graph = Images.Graph())
        {
            var backend = await graph.Graph.OpenBackendAsync(new BlockdevOptionsParallels
            {
                File = new BlockdevOptionsFile { Filename = image },
                PreallocMode = mode == "truncate" ? ParallelsPreallocMode.Truncate : ParallelsPreallocMode.Falloc,
                PreallocSize = (ulong)(size ?? (long)BlockdevOptionsParallels.DefaultPreallocSize),
            });
            foreach (var (offset, length) in Writes)
            {
                BlockIo.Write(backend, offset, Patterns.Fill(length, 0x5a));
                ours.Add(new FileInfo(image).Length);
            }
            File.Copy(image, crashedOurs);
        }
        Assert.Equal(theirs, ours);

        // The file a crash leaves: same check, same output, from both tools.
        var q = QemuImg.Run("check", "-f", "parallels", crashedTheirs);
        var b = BlkRunner.Run("check", "-f", "parallels", crashedOurs);
        Assert.Equal((q.ExitCode, q.Stdout.Replace(crashedTheirs, crashedOurs, StringComparison.Ordinal), BlkRunner.AsBlk(q.Stderr).Replace(crashedTheirs, crashedOurs, StringComparison.Ordinal)), (b.ExitCode, b.Stdout, b.Stderr));
        Assert.Equal(q.Stdout.Replace(crashedTheirs, crashedOurs, StringComparison.Ordinal), QemuImg.Run("check", "-f", "parallels", crashedOurs).Stdout);

        // A clean close cuts the preallocation off, as QEMU's does.
        string closed = dir.File("q-closed.prl");
        QemuImg.Create("parallels", closed, "512M");
        var closeArgs = new List<string> { "--image-opts" };
        foreach (var (offset, length) in Writes)
            closeArgs.AddRange(["-c", $"write -P 0x5a {offset} {length}"]);
        closeArgs.Add($"driver=parallels,file.filename={closed}" + (options.Length > 0 ? "," + options : ""));
        ProcessRunner.Run(QemuIo.Path, closeArgs).EnsureSuccess("qemu-io");
        Assert.Equal(new FileInfo(closed).Length, new FileInfo(image).Length);
        Images.AssertCheckClean(image, "parallels");
        Assert.Equal(0, QemuImg.Compare(closed, image, "parallels", "parallels"));
    }

    [Theory]
    [InlineData("prealloc-mode=off")]
    [InlineData("prealloc-mode=bogus")]
    [InlineData("prealloc-size=abc")]
    public void Bad_values_are_refused_with_qemus_message(string option)
    {
        using var dir = new TempDirectory();
        string image = dir.File("p.prl");
        QemuImg.Create("parallels", image, "1M");
        Images.AssertSameOutput("info", "--image-opts", $"driver=parallels,{option},file.filename={image}");
    }
}
