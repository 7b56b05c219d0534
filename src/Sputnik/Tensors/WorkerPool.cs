namespace Sputnik.Tensors;

/// <summary>
/// A persistent pool of worker threads for splitting a loop into even, contiguous ranges. One call hands the
/// same delegate to every worker and waits for all of them; nothing is allocated per call, so the decode loop
/// can use it per matrix without garbage. The calling thread takes the first range itself.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _start;
    private readonly CountdownEvent _done;
    private Action<int, int>? _body;
    private int _total;
    private volatile bool _stopping;
    private Exception? _workerError;

    public int Threads { get; }

    public WorkerPool(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), "need at least one thread");
        Threads = threads;
        _threads = new Thread[threads - 1];
        _start = new SemaphoreSlim[threads - 1];
        _done = new CountdownEvent(1);
        for (int i = 0; i < _threads.Length; i++)
        {
            int worker = i + 1;
            _start[i] = new SemaphoreSlim(0);
            _threads[i] = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"sputnik-worker-{worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>Runs body(start, end) over [0, total) split into at most <see cref="Threads"/> contiguous ranges.</summary>
    public void For(int total, Action<int, int> body, int minPerThread = 1)
    {
        int parts = Math.Min(Threads, Math.Max(1, total / Math.Max(1, minPerThread)));
        if (parts <= 1 || total <= 1)
        {
            if (total > 0) body(0, total);
            return;
        }
        _body = body;
        _total = total;
        _done.Reset(parts - 1);
        for (int i = 0; i < parts - 1; i++) _start[i].Release();
        var (s, e) = Range(0, parts, total);
        body(s, e);
        _done.Wait();
        _body = null;
        if (_workerError is { } err)
        {
            _workerError = null;
            throw new AggregateException("a worker thread failed", err);
        }
    }

    private static (int Start, int End) Range(int part, int parts, int total)
    {
        long s = (long)total * part / parts, e = (long)total * (part + 1) / parts;
        return ((int)s, (int)e);
    }

    private void WorkerLoop(int worker)
    {
        var start = _start[worker - 1];
        while (true)
        {
            start.Wait();
            if (_stopping) return;
            int parts = _done.InitialCount + 1;
            var (s, e) = Range(worker, parts, _total);
            try { _body!(s, e); }
            catch (Exception ex) { _workerError = ex; }
            finally { _done.Signal(); }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var s in _start) s.Release();
        foreach (var t in _threads) t.Join();
        foreach (var s in _start) s.Dispose();
        _done.Dispose();
    }
}
