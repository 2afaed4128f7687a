using Block.Cli.Common;

namespace Block.Cli.Img;

/// <summary>qemu-img's <c>-p</c> progress line: <c>"    (12.50/100%)\r"</c>, then a newline at the end.</summary>
internal sealed class Progress
{
    private readonly TextWriter? _out;
    private readonly double _minStep;
    private double _last = -1;
    private float _accumulated;

    public Progress(TextWriter? output, double minStep)
    {
        _out = output;
        _minStep = minStep;
    }

    /// <summary>Prints <paramref name="percent"/> if it moved by more than the minimum step since the last print, or is 100.</summary>
    public void Report(double percent, bool force = false)
    {
        if (_out is null)
            return;
        if (!force && _last >= 0 && percent - _last <= _minStep && percent < 100)
            return;
        _last = percent;
        _out.Write($"    ({CFormat.Fixed(percent, 2)}/100%)\r");
    }

    /// <summary>
    /// Moves the meter by <paramref name="deltaPercent"/> (added in single precision and capped at 100, as qemu-img
    /// accumulates per-chunk steps) and reports the sum.
    /// </summary>
    public void Advance(float deltaPercent)
    {
        _accumulated = Math.Min(100f, _accumulated + deltaPercent / 100f * 100f);
        Report(_accumulated);
    }

    /// <summary>Ends the progress output with a newline.</summary>
    public void End() => _out?.Write("\n");
}
