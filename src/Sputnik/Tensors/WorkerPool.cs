namespace Sputnik.Tensors;

/// <summary>
/// A persistent pool of worker threads for splitting a loop into even, contiguous ranges. One call hands the
/// same delegate to every worker and waits for all of them; nothing is allocated per call, so the decode loop
/// can use it per matrix without garbage. The calling thread takes the first range itself.
/// </summary>
/// <remarks>
/// Hand-off: a call bumps a volatile generation counter. Workers spin on it for a short while after finishing
/// (a decode step issues hundreds of calls microseconds apart, and waking a thread blocked in a semaphore costs
/// tens of microseconds), then announce they are going to sleep and block. The caller releases the semaphore of
/// exactly those workers that announced sleeping; the announce/claim handshake with Interlocked.Exchange makes
/// sure every release is consumed by one Wait, so no wake-up is lost and none is left over.
/// </remarks>
public sealed class WorkerPool : IDisposable
{
    // How long an idle worker spins before it blocks: longer than the gaps between the matrix products of one
    // token, short enough not to burn a core while the caller samples or waits for input.
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 5000; // 200 µs

    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _wake;
    private readonly int[] _sleeping;
    private Action<int, int>? _body;
    private int _total;
    // Generation (high bits) and part count (low 16 bits) of the current call, published in one write so a worker
    // that is not part of call g can never mistake call g+1's part count for g's.
    private long _call;
    private int _pending;
    private volatile bool _stopping;
    private Exception? _workerError;

    /// <summary>Number of threads a call uses at most, the caller included (exactly what was asked for).</summary>
    public int Threads { get; }

    public WorkerPool(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), "need at least one thread");
        Threads = threads;
        _threads = new Thread[threads - 1];
        _wake = new SemaphoreSlim[threads - 1];
        _sleeping = new int[threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int worker = i + 1;
            _wake[i] = new SemaphoreSlim(0);
            _threads[i] = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"sputnik-worker-{worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>Runs body(start, end) over [0, total) split into at most <see cref="Threads"/> contiguous ranges of at least <paramref name="minPerThread"/>.</summary>
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
        Volatile.Write(ref _pending, parts - 1);
        long gen = (_call >> 16) + 1;
        Interlocked.Exchange(ref _call, gen << 16 | (long)parts); // full fence: publishes the fields above
        for (int i = 0; i < parts - 1; i++)
            if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();

        var (s, e) = Range(0, parts, total);
        try { body(s, e); }
        finally
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
            _body = null;
        }
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
        int slot = worker - 1;
        long seen = Volatile.Read(ref _call);
        while (true)
        {
            long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
            int spins = 0;
            while (Volatile.Read(ref _call) == seen && !_stopping)
            {
                Thread.SpinWait(4);
                if ((++spins & 63) != 0 || System.Diagnostics.Stopwatch.GetTimestamp() < deadline) continue;
                // Announce sleep (full fence), then re-check: a call that started in between may not have seen the flag.
                Interlocked.Exchange(ref _sleeping[slot], 1);
                if (Volatile.Read(ref _call) != seen || _stopping)
                {
                    // If the caller already claimed the flag it also released the semaphore: consume that release.
                    if (Interlocked.Exchange(ref _sleeping[slot], 0) == 0) _wake[slot].Wait();
                }
                else _wake[slot].Wait();
                deadline = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
            }
            if (_stopping) return;
            seen = Volatile.Read(ref _call);
            int parts = (int)(seen & 0xFFFF);
            if (worker >= parts) continue;
            var (s, e) = Range(worker, parts, _total);
            try { _body!(s, e); }
            catch (Exception ex) { _workerError = ex; }
            finally { Interlocked.Decrement(ref _pending); }
        }
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        for (int i = 0; i < _wake.Length; i++)
            if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();
        foreach (var t in _threads) t.Join();
        foreach (var s in _wake) s.Dispose();
    }
}
