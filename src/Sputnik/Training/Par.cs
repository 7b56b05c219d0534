namespace Sputnik.Training;

/// <summary>
/// Row-parallel loops for the training kernels. The range is cut into one contiguous chunk per thread, so each
/// worker streams its own rows and the per-call cost is one Parallel.For over at most <see cref="Threads"/> items.
/// </summary>
internal static class Par
{
    /// <summary>Threads used by every training kernel (the CLI sets it from --threads).</summary>
    public static int Threads { get; set; } = Math.Max(1, Math.Min(Environment.ProcessorCount, 2));

    /// <summary>Runs body(start, end) over [0, n) in up to Threads chunks; small ranges stay on the caller's thread.</summary>
    public static void For(int n, Action<int, int> body, int minPerChunk = 1)
    {
        int chunks = Math.Min(Threads, Math.Max(1, n / Math.Max(1, minPerChunk)));
        if (chunks <= 1 || n <= 1)
        {
            if (n > 0) body(0, n);
            return;
        }
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks }, c =>
        {
            int s = (int)((long)n * c / chunks), e = (int)((long)n * (c + 1) / chunks);
            if (e > s) body(s, e);
        });
    }
}
