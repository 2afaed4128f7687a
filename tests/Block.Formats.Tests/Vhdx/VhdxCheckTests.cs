using Block.TestSupport;

namespace Block.Formats.Tests.Vhdx;

/// <summary>
/// <c>check</c> and <c>check -r</c> of vhdx images as qemu-img 7.2 does them: a read/write open (any <c>-r</c>)
/// replays a pending log and counts it as a fixed corruption, a read-only one refuses the image; blocks past the end of
/// the file are corruptions nothing repairs. Same counts, text and JSON output, exit codes, and repaired bytes.
/// </summary>
public class VhdxCheckTests
{
    /// <summary>Damage done to an image qemu-io wrote two blocks into.</summary>
    public enum Damage
    {
        None,
        PendingLog,
        Truncated,
        PendingLogAndTruncated,
    }

    public static TheoryData<Damage, string> Cases()
    {
        var data = new TheoryData<Damage, string>();
        foreach (var damage in Enum.GetValues<Damage>())
        {
            foreach (var command in new[] { "", "-r leaks", "-r all", "--output=json", "--output=json -r all", "--output=json -r leaks" })
                data.Add(damage, command);
        }
        return data;
    }

    private static string Damaged(TempDirectory dir, string name, Damage damage)
    {
        string image = dir.File(name);
        QemuImg.Create("vhdx", image, "64M");
        Images.QemuIo(image, "vhdx", "write -P 0xaa 0 4k", "write -P 0xbb 9M 4k", "write -P 0xcc 17M 4k");
        if (damage is Damage.PendingLog or Damage.PendingLogAndTruncated)
            VhdxFixtures.ArmLastLogEntry(image, batEntryToClear: 2);
        if (damage is Damage.Truncated or Damage.PendingLogAndTruncated)
        {
            // Cuts the last block (the file's last 8 MiB) in half.
            using var f = new FileStream(image, FileMode.Open, FileAccess.Write);
            f.SetLength(f.Length - (4 << 20));
        }
        return image;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Check_and_repair_equal_qemu_img_in_output_exit_code_and_repaired_bytes(Damage damage, string command)
    {
        using var dir = new TempDirectory();
        string theirs = Damaged(dir, "q.vhdx", damage);
        string ours = dir.File("b.vhdx");
        File.Copy(theirs, ours);
        string[] args = ["check", .. command.Split(' ', StringSplitOptions.RemoveEmptyEntries), "-f", "vhdx"];
        var q = QemuImg.Run([.. args, theirs]);
        var b = BlkRunner.Run([.. args, ours]);
        Assert.Equal(
            (q.ExitCode, q.Stdout.Replace(theirs, ours, StringComparison.Ordinal), BlkRunner.AsBlk(q.Stderr).Replace(theirs, ours, StringComparison.Ordinal)),
            (b.ExitCode, b.Stdout, b.Stderr));
        VhdxInteropTests.AssertSameBytesButGuids(theirs, ours);
    }
}
