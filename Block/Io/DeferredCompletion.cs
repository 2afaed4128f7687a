using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;

namespace Block.Io;

/// <summary>
/// A value task that completes on the thread pool shortly after it is created, without allocating: how a device
/// with a completion queue (QEMU's <c>null-aio</c>) finishes a request.
/// </summary>
internal sealed class DeferredCompletion : IValueTaskSource, IThreadPoolWorkItem
{
    private static readonly ConcurrentQueue<DeferredCompletion> s_pool = new();
    private ManualResetValueTaskSourceCore<bool> _core;

    public static ValueTask Yield()
    {
        if (!s_pool.TryDequeue(out var item))
            item = new DeferredCompletion();
        var task = new ValueTask(item, item._core.Version);
        ThreadPool.UnsafeQueueUserWorkItem(item, preferLocal: false);
        return task;
    }

    void IThreadPoolWorkItem.Execute() => _core.SetResult(true);

    public void GetResult(short token)
    {
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            if (s_pool.Count < 1024)
                s_pool.Enqueue(this);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
