namespace Block.Qcow2.Driver;

/// <summary>The operations of an amend that report progress, each taking an equal share of the whole.</summary>
internal enum AmendOperation
{
    ChangingVersion,
    ChangingRefcountOrder,
}

/// <summary>
/// Turns the progress of the operations an amend performs into one progress for the whole, as QEMU's amend helper
/// does: the work of the operations done so far plus the current one's, projected over the operations still to come.
/// </summary>
/// <param name="report">The caller's callback (work done, total work), or null.</param>
/// <param name="operations">How many operations will report.</param>
internal sealed class AmendProgress(Action<long, long>? report, int operations)
{
    private AmendOperation? _last;
    private int _completed;
    private long _offsetCompleted;
    private long _lastWorkSize;

    /// <summary>The callback operation <paramref name="operation"/> reports its (offset, work size) to.</summary>
    public Action<long, long> For(AmendOperation operation) => (offset, workSize) => Report(operation, offset, workSize);

    private void Report(AmendOperation operation, long offset, long workSize)
    {
        if (report is null || operations == 0)
            return;
        if (_last != operation)
        {
            if (_last != null)
            {
                _offsetCompleted += _lastWorkSize;
                _completed++;
            }
            _last = operation;
        }
        _lastWorkSize = workSize;
        long current = _offsetCompleted + workSize;
        // The operations still to come are assumed to take as much work each as the ones so far did on average.
        long projected = current * (operations - _completed - 1) / (_completed + 1);
        report(_offsetCompleted + offset, current + projected);
    }
}
