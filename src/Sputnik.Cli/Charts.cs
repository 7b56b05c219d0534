using Sputnik.Training;

namespace Sputnik.Cli;

/// <summary>Training charts drawn with ScottPlot 5 from the metrics CSVs (PNG).</summary>
internal static class Charts
{
    /// <summary>What the y values are, which decides the axis.</summary>
    public enum Scale
    {
        /// <summary>Pass rates, accuracies, rewards in [0, 1]: the axis is always 0 to 1, so 0 % looks like 0 %.</summary>
        Fraction,

        /// <summary>Losses, lengths: the axis starts at 0 and reaches a little above the largest value.</summary>
        FromZero,
    }

    /// <summary>One line per (column, label) against the step column; rows with an empty cell are skipped.</summary>
    public static void Line(string csv, string png, string title, string yLabel, Scale scale, params (string Column, string Label)[] series) =>
        Build(csv, title, yLabel, scale, series).SavePng(png, 800, 450);

    /// <summary>
    /// The plot <see cref="Line"/> saves. Left to itself ScottPlot centres a flat series in ±1 (pass@1 from −1 to 1
    /// when every value is 0) and draws the legend over the newest points; both are set explicitly here.
    /// </summary>
    internal static ScottPlot.Plot Build(string csv, string title, string yLabel, Scale scale, params (string Column, string Label)[] series)
    {
        var plt = new ScottPlot.Plot();
        double max = 0;
        double lastStep = 0;
        int drawn = 0;
        foreach (var (col, label) in series)
        {
            var (x, y) = MetricsCsv.Column(csv, "step", col);
            if (x.Length == 0) continue;
            var sc = plt.Add.Scatter(x, y);
            sc.LegendText = label;
            sc.MarkerSize = x.Length > 60 ? 0 : 4;
            max = Math.Max(max, y.Where(double.IsFinite).DefaultIfEmpty(0).Max());
            lastStep = Math.Max(lastStep, x.Max());
            drawn++;
        }
        plt.Title(title);
        plt.XLabel("step");
        plt.YLabel(yLabel);
        // Small margins so points on 0 and on the top line stay visible.
        double top = scale == Scale.Fraction ? 1 : max > 0 ? max * 1.05 : 1;
        plt.Axes.SetLimitsY(-0.02 * top, top * 1.02);
        plt.Axes.SetLimitsX(0, lastStep > 0 ? lastStep * 1.02 : 1);
        if (drawn > 1) plt.ShowLegend(ScottPlot.Edge.Bottom); // below the axes, never on the data
        return plt;
    }

    public static void Sft(string dir)
    {
        string csv = Path.Combine(dir, "metrics.csv");
        Line(csv, Path.Combine(dir, "sft_loss.png"), "SFT loss (assistant tokens only)", "cross-entropy", Scale.FromZero, ("loss", "loss"));
        Line(csv, Path.Combine(dir, "sft_eval.png"), "SFT held-out greedy pass@1", "pass@1", Scale.Fraction, ("eval_pass_at_1", "pass@1"));
    }

    public static void Grpo(string dir)
    {
        string csv = Path.Combine(dir, "grpo_metrics.csv");
        Line(csv, Path.Combine(dir, "grpo_reward.png"), "GRPO mean reward and sample accuracy", "per rollout", Scale.Fraction,
            ("mean_reward", "mean reward"), ("accuracy", "accuracy (train rollouts)"), ("eval_pass_at_1", "held-out greedy pass@1"));
        Line(csv, Path.Combine(dir, "grpo_length.png"), "GRPO response length", "tokens", Scale.FromZero, ("mean_length", "mean completion tokens"));
    }
}
