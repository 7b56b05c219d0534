using Sputnik.Training;

namespace Sputnik.Cli;

/// <summary>Training charts drawn with ScottPlot 5 from the metrics CSVs (PNG).</summary>
internal static class Charts
{
    /// <summary>One line per (column, label) against the step column; rows with an empty cell are skipped.</summary>
    public static void Line(string csv, string png, string title, string yLabel, params (string Column, string Label)[] series)
    {
        var plt = new ScottPlot.Plot();
        foreach (var (col, label) in series)
        {
            var (x, y) = MetricsCsv.Column(csv, "step", col);
            if (x.Length == 0) continue;
            var sc = plt.Add.Scatter(x, y);
            sc.LegendText = label;
            sc.MarkerSize = x.Length > 60 ? 0 : 4;
        }
        plt.Title(title);
        plt.XLabel("step");
        plt.YLabel(yLabel);
        if (series.Length > 1) plt.ShowLegend();
        plt.SavePng(png, 800, 450);
    }

    public static void Sft(string dir)
    {
        string csv = Path.Combine(dir, "metrics.csv");
        Line(csv, Path.Combine(dir, "sft_loss.png"), "SFT loss (assistant tokens only)", "cross-entropy", ("loss", "loss"));
        Line(csv, Path.Combine(dir, "sft_eval.png"), "SFT held-out greedy pass@1", "pass@1", ("eval_pass_at_1", "pass@1"));
    }

    public static void Grpo(string dir)
    {
        string csv = Path.Combine(dir, "grpo_metrics.csv");
        Line(csv, Path.Combine(dir, "grpo_reward.png"), "GRPO mean reward and sample accuracy", "per rollout",
            ("mean_reward", "mean reward"), ("accuracy", "accuracy (train rollouts)"), ("eval_pass_at_1", "held-out greedy pass@1"));
        Line(csv, Path.Combine(dir, "grpo_length.png"), "GRPO response length", "tokens", ("mean_length", "mean completion tokens"));
    }
}
