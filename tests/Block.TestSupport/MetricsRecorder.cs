using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Block.Metrics;

namespace Block.TestSupport;

/// <summary>
/// What a <see cref="MeterListener"/> subscribed to the <c>Block</c> meter by name (as <c>dotnet-counters</c> and
/// OpenTelemetry subscribe) recorded for one device or node. Listeners see every graph of the process, so a test names
/// its backend or node uniquely and reads only the measurements tagged with that name.
/// </summary>
public sealed class MetricsRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly string _name;
    private readonly ConcurrentQueue<(string Instrument, string? Kind, double Value)> _measurements = new();

    public MetricsRecorder(string deviceOrNode)
    {
        _name = deviceOrNode;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == BlockMetrics.MeterName)
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>The sum of <paramref name="instrument"/>'s measurements of <paramref name="kind"/> (the operation, or the qcow2 cache).</summary>
    public long Sum(string instrument, string kind) =>
        (long)_measurements.Where(m => m.Instrument == instrument && m.Kind == kind).Sum(m => m.Value);

    /// <summary>Every measurement of <paramref name="instrument"/> of <paramref name="kind"/>.</summary>
    public List<double> Values(string instrument, string kind) =>
        [.. _measurements.Where(m => m.Instrument == instrument && m.Kind == kind).Select(m => m.Value)];

    /// <summary>Collects the observable instruments now and returns the sum of what <paramref name="instrument"/> reported.</summary>
    public long Observe(string instrument)
    {
        int before = _measurements.Count;
        _listener.RecordObservableInstruments();
        return (long)_measurements.Skip(before).Where(m => m.Instrument == instrument).Sum(m => m.Value);
    }

    public void Dispose() => _listener.Dispose();

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        string? name = null, kind = null;
        foreach (var tag in tags)
        {
            if (tag.Key is BlockMetrics.DeviceTag or BlockMetrics.NodeTag)
                name = tag.Value as string;
            else if (tag.Key is BlockMetrics.OperationTag or BlockMetrics.CacheTag)
                kind = tag.Value as string;
        }
        if (name == _name)
            _measurements.Enqueue((instrument.Name, kind, value));
    }
}
