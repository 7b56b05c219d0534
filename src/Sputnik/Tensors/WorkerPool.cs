namespace Sputnik.Tensors;

/// <summary>
/// A persistent pool of worker threads for splitting a loop into contiguous chunks. One call hands the same
/// delegate to every worker and returns when every chunk is done; nothing is allocated per call, so the decode
/// loop can use it per matrix without garbage. The calling thread works on chunks too.
/// </summary>
/// <remarks>
/// Hand-off: a call bumps a generation counter. Workers spin on it for a short while after finishing
/// (a decode step issues hundreds of calls microseconds apart, and waking a thread blocked in a semaphore costs
/// tens of microseconds), then announce they are going to sleep and block. The caller releases the semaphore of
/// exactly those workers that announced sleeping; the announce/claim handshake with Interlocked.Exchange makes
/// sure every release is consumed by one Wait, so no wake-up is lost and none is left over.
/// </remarks>
internal sealed class WorkerPool : IDisposable
{
    // How long an idle worker spins before it blocks: longer than the gaps between the matrix products of one
    // token, short enough not to burn a core while the caller samples or waits for input.
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 20000; // 50 µs

    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _wake;
    private readonly int[] _sleeping;
    private Action<int, int>? _body;
    private int _total, _chunks, _align;
    // Generation of the current call (high 32 bits) and the next unclaimed chunk (low 32 bits) in one word, so a
    // late worker's claim of call g can never succeed against call g+1.
    private long _next;
    private int _completed;
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

    /// <summary>
    /// Runs body(start, end) over [0, total) in contiguous chunks, at most total / <paramref name="minPerThread"/> of
    /// them (one call on the caller's thread when that is one), using at most <see cref="Threads"/> threads (the
    /// caller included). Chunk boundaries fall on multiples of
    /// <paramref name="align"/> (interleaved weight rows: a group of 16 split between two chunks is computed by both).
    /// </summary>
    /// <remarks>
    /// Chunks are claimed dynamically (a few per thread) rather than one fixed range per thread: when the machine is
    /// oversubscribed and a worker is descheduled, the others take its share instead of waiting for it at the
    /// barrier, and uneven work evens out. Their sizes shrink from first to last (<see cref="Boundary"/>), so the
    /// thread that finishes first waits at most for a small last chunk.
    /// </remarks>
    public void For(int total, Action<int, int> body, int minPerThread = 1, int align = 1)
    {
        if (align < 1) throw new ArgumentOutOfRangeException(nameof(align), align, "chunk alignment must be at least 1");
        // No more chunks than aligned spans: a call that fits one runs on the caller's thread, with no hand-off.
        int chunks = Math.Min(Math.Min(Threads * ChunksPerThread, Math.Max(1, total / Math.Max(1, minPerThread))), (total + align - 1) / align);
        if (Threads == 1 || chunks <= 1 || total <= 1)
        {
            if (total > 0) body(0, total);
            return;
        }
        // A call that gives each thread one chunk still uses at most Threads threads.
        int helpers = Math.Min(Threads - 1, chunks - 1);
        // Close the finished call before its fields change. A worker can still be in RunChunks of that call, holding
        // its all-claimed chunk index: checked against the next call's larger chunk count, and claimed by a
        // compare-exchange against the unchanged word, it ran a chunk of the next call before that call began, so
        // one chunk ran twice and the completion count overshot (a silent wrong result, then a caller waiting forever).
        long gen = (Volatile.Read(ref _next) >> 32) + 1;
        Interlocked.Exchange(ref _next, ((gen - 1) << 32) | ClosedChunk);
        _body = body;
        _total = total;
        _chunks = chunks;
        _align = align;
        Volatile.Write(ref _completed, 0);
        Interlocked.Exchange(ref _next, gen << 32); // full fence: publishes the fields above
        for (int i = 0; i < helpers; i++)
            if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();

        try { RunChunks(gen); }
        finally
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _completed) != chunks) spin.SpinOnce(sleep1Threshold: -1);
            _body = null;
        }
        if (_workerError is { } err)
        {
            _workerError = null;
            throw new AggregateException("a worker thread failed", err);
        }
    }

    private const int ChunksPerThread = 4;

    // The chunk index of a closed call: no call has that many chunks, so nothing more can be claimed from it.
    private const long ClosedChunk = int.MaxValue;

    /// <summary>Claims and runs chunks of call <paramref name="gen"/> until none is left (or the call is over).</summary>
    private void RunChunks(long gen)
    {
        while (true)
        {
            long v = Volatile.Read(ref _next);
            if (v >> 32 != gen) return;
            int chunk = (int)(v & 0xFFFFFFFF);
            if (chunk >= _chunks) return;
            if (Interlocked.CompareExchange(ref _next, v + 1, v) != v) continue;
            // A claimed chunk keeps the call alive (the caller waits for it), so its fields are stable here.
            int s = Boundary(chunk, _chunks, _total, _align), e = Boundary(chunk + 1, _chunks, _total, _align);
            try { if (s < e) _body!(s, e); }
            catch (Exception ex) { _workerError = ex; }
            finally { Interlocked.Increment(ref _completed); }
        }
    }

    /// <summary>
    /// Where chunk <paramref name="part"/> of <paramref name="parts"/> starts (part = parts: the end), rounded down to
    /// a multiple of <paramref name="align"/>. With more chunks than threads the sizes fall linearly from first to last
    /// (chunk k covers (2·(parts − k) − 1)/parts² of the total: 15/64 down to 1/64 for 8), so when one thread runs out
    /// of chunks the other is at most a small chunk from done. Equal chunks left the first thread idle for about half
    /// a chunk, an eighth of a call, at the end of every product: measured over DeepSeek-V2-Lite decode (temporary
    /// timers) 4.6 s of one thread waiting in 19 s of pool calls with equal chunks, 1.8 s with these.
    /// </summary>
    private int Boundary(int part, int parts, int total, int align)
    {
        if (part >= parts) return total;
        long b;
        if (parts > Threads)
        {
            long left = parts - part;
            b = total - (long)total * left * left / ((long)parts * parts);
        }
        else b = (long)total * part / parts;
        return (int)(b / align * align);
    }

    private void WorkerLoop(int worker)
    {
        int slot = worker - 1;
        long seen = Volatile.Read(ref _next) >> 32;
        while (true)
        {
            long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
            int spins = 0;
            while (Volatile.Read(ref _next) >> 32 == seen && !_stopping)
            {
                Thread.SpinWait(4);
                if ((++spins & 63) != 0 || System.Diagnostics.Stopwatch.GetTimestamp() < deadline) continue;
                // Announce sleep (full fence), then re-check: a call that started in between may not have seen the flag.
                Interlocked.Exchange(ref _sleeping[slot], 1);
                if (Volatile.Read(ref _next) >> 32 != seen || _stopping)
                {
                    // If the caller already claimed the flag it also released the semaphore: consume that release.
                    if (Interlocked.Exchange(ref _sleeping[slot], 0) == 0) _wake[slot].Wait();
                }
                else _wake[slot].Wait();
                deadline = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
            }
            if (_stopping) return;
            seen = Volatile.Read(ref _next) >> 32;
            RunChunks(seen);
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
