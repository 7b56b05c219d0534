using System.Diagnostics;

/// <summary>
/// Runs an action over and over for a few seconds: its fastest run, its mean, and the process's CPU time per run (on a
/// shared machine the CPU time is steadier than the wall clock).
/// </summary>
internal static class Repeat
{
    public readonly record struct Timing(double Best, double Mean, double CpuPerRun, int Runs);

    public static Timing For(double seconds, Action run)
    {
        double best = double.MaxValue, total = 0;
        int runs = 0;
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            long t0 = Stopwatch.GetTimestamp();
            run();
            double t = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            best = Math.Min(best, t);
            total += t;
            runs++;
        }
        return new Timing(best, total / runs, (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds / runs, runs);
    }
}
