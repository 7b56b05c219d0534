using Spectre.Console;
using Sputnik.Tools;

namespace Sputnik.Cli;

/// <summary>A Spectre.Console progress bar on stderr (stdout stays clean); silent when stderr is not a terminal.</summary>
internal static class ProgressBar
{
    /// <summary>Tests that capture Console.Error turn the bar off.</summary>
    internal static bool Enabled { get; set; } = true;

    public static T Run<T>(string title, Func<Action<ToolProgress>, T> work)
    {
        if (!Enabled || Console.IsErrorRedirected) return work(_ => { });
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1);
                return work(p =>
                {
                    task.MaxValue = Math.Max(1, p.BytesTotal);
                    task.Value = p.BytesDone;
                    task.Description = Markup.Escape($"{title} [{p.Index + 1}/{p.Count}] {p.Tensor}");
                });
            });
    }

    public static string Size(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : $"{bytes / (double)(1 << 20):F2} MiB";
}
