using Sputnik.Cli.Commands;

namespace Sputnik.Cli.Simulation;

/// <summary>The simulator's curves against the replica count (ScottPlot 5, PNG), one line per routing policy.</summary>
internal static class SimulationCharts
{
    public static void Draw(IReadOnlyList<SimulationResult> results, string dir)
    {
        Directory.CreateDirectory(dir);
        Plot(results, Path.Combine(dir, "sim_hit_rate.png"), "Prefix-cache hit rate", "prompt tokens from cache (%)", r => r.PrefixHitRate * 100, fromZeroTo: 100);
        Plot(results, Path.Combine(dir, "sim_ttft_p50.png"), "Time to first token, median", "seconds", r => r.TtftP50);
        Plot(results, Path.Combine(dir, "sim_ttft_p95.png"), "Time to first token, 95th percentile", "seconds", r => r.TtftP95);
        Plot(results, Path.Combine(dir, "sim_throughput.png"), "Output tokens/s per replica", "tokens/s", r => r.OutputTokensPerSecondPerReplica);
    }

    /// <summary>The replica counts sit at equal steps (1, 2, 4 … 64 are doublings), labelled with the count.</summary>
    private static void Plot(IReadOnlyList<SimulationResult> results, string png, string title, string yLabel, Func<SimulationResult, double> y, double? fromZeroTo = null)
    {
        var counts = results.Select(r => r.Replicas).Distinct().Order().ToArray();
        var plt = new ScottPlot.Plot();
        double max = 0;
        foreach (var group in results.GroupBy(r => r.Policy))
        {
            var points = group.OrderBy(r => r.Replicas).ToArray();
            var xs = points.Select(r => (double)Array.IndexOf(counts, r.Replicas)).ToArray();
            var ys = points.Select(y).ToArray();
            var line = plt.Add.Scatter(xs, ys);
            line.LegendText = SimulateCommand.Name(group.Key);
            line.MarkerSize = 6;
            max = Math.Max(max, ys.Max());
        }
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, counts.Length).Select(i => (double)i).ToArray(), counts.Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        plt.Title(title);
        plt.XLabel("replicas");
        plt.YLabel(yLabel);
        double top = fromZeroTo ?? (max > 0 ? max * 1.08 : 1);
        plt.Axes.SetLimitsY(-0.02 * top, top * 1.02);
        plt.Axes.SetLimitsX(-0.2, counts.Length - 0.8);
        plt.ShowLegend(ScottPlot.Edge.Bottom);
        plt.SavePng(png, 800, 450);
    }
}
