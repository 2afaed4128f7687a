using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// The oracle wrapper asks qemu-img again only when QEMU's PBKDF2 calibration failed (its CPU clock read zero), a
/// bounded number of times; every other answer, failures included, stands at once.
/// </summary>
public class OracleCalibrationRetryTests
{
    private static readonly ProcessResult s_calibrationFailure = new(1, "", "qemu-img: x.luks: Unable to get accurate CPU usage\n");

    [Fact]
    public void A_calibration_failure_is_asked_again_until_qemu_answers()
    {
        int runs = 0;
        var ok = new ProcessResult(0, "Formatting 'x.luks'\n", "");
        var result = QemuImg.AskingAgainOnCalibrationFailure(() => ++runs < 3 ? s_calibrationFailure : ok);
        Assert.Same(ok, result);
        Assert.Equal(3, runs);
    }

    [Fact]
    public void A_calibration_failure_that_persists_stands_after_the_bounded_number_of_runs()
    {
        int runs = 0;
        var result = QemuImg.AskingAgainOnCalibrationFailure(() => { runs++; return s_calibrationFailure; });
        Assert.Same(s_calibrationFailure, result);
        Assert.Equal(QemuImg.CalibrationAttempts, runs);
    }

    [Theory]
    [InlineData(1, "qemu-img: x.luks: Parameter 'key-secret' is required for cipher\n")]
    [InlineData(1, "qemu-img: x.luks: Unable to get accurate CPU usage\nqemu-img: something else\n")]
    [InlineData(2, "qemu-img: x.luks: Unable to get accurate CPU usage\n")]
    [InlineData(0, "qemu-img: x.luks: Unable to get accurate CPU usage\n")]
    public void Any_other_answer_stands_at_once(int exitCode, string stderr)
    {
        int runs = 0;
        var answer = new ProcessResult(exitCode, "", stderr);
        var result = QemuImg.AskingAgainOnCalibrationFailure(() => { runs++; return answer; });
        Assert.Same(answer, result);
        Assert.Equal(1, runs);
    }

    [Fact]
    public void A_real_qemu_img_error_is_not_taken_for_the_calibration_failure()
    {
        using var dir = new TempDirectory();
        var r = QemuImg.Run("create", "-f", "luks", "-o", "key-secret=nosuch", dir.File("x.luks"), "1M");
        Assert.Equal(1, r.ExitCode);
        Assert.False(QemuImg.IsCalibrationFailure(r));
    }
}
