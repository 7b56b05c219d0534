namespace Sputnik.Tests;

/// <summary>Allocation checks for code that must allocate nothing in steady state.</summary>
internal static class Allocations
{
    /// <summary>
    /// The fewest bytes the current thread allocated in any of <paramref name="windows"/> runs of
    /// <paramref name="step"/> × <paramref name="steps"/>. A real per-step allocation shows in every window; the
    /// runtime itself now and then allocates a few KB on a thread for its own reasons (dotnet/runtime#63487: the
    /// runtime's own test of this counter fails about once a week, most often with tiered compilation off), and
    /// that must not fail a check of our code. Stops at the first clean window.
    /// </summary>
    public static long FewestBytes(Action step, int steps, int windows = 3)
    {
        long fewest = long.MaxValue;
        for (int w = 0; w < windows && fewest != 0; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < steps; i++) step();
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return fewest;
    }
}
