using System.Diagnostics;
using Spectre.Console;
using Sputnik.Tools;

namespace Sputnik.Cli;

/// <summary>
/// Progress of a long tool run on stderr (stdout stays clean): a Spectre.Console bar when stderr is a terminal,
/// otherwise plain lines — one per 10 % and at least every 10 s — so a redirected log (nohup, CI) has no \r or
/// escape sequences in it.
/// </summary>
internal static class ProgressBar
{
    private static readonly TimeSpan PlainInterval = TimeSpan.FromSeconds(10);

    /// <summary>Whether the animated bar may be drawn; tests that capture Console.Error turn it off to get the plain lines.</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>True when stderr is a terminal the bar can redraw in place.</summary>
    public static bool Animated => Enabled && !Console.IsErrorRedirected;

    public static T Run<T>(string title, Func<Action<ToolProgress>, T> work) =>
        Run(title, report => work(p => report(p.BytesDone, p.BytesTotal, $"[{p.Index + 1}/{p.Count}] {p.Tensor}")));

    /// <summary>Runs <paramref name="work"/>, which reports (bytes done, bytes total, what it is working on).</summary>
    public static T Run<T>(string title, Func<Action<long, long, string>, T> work)
    {
        if (!Animated) return work(PlainReporter(title, Console.Error));
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1);
                return work((done, total, what) =>
                {
                    task.MaxValue = Math.Max(1, total);
                    task.Value = done;
                    task.Description = Markup.Escape($"{title} {what}");
                });
            });
    }

    /// <summary>"title: 40% what" lines, written when the percentage passes a multiple of 10 or 10 s have passed.</summary>
    internal static Action<long, long, string> PlainReporter(string title, TextWriter output)
    {
        int lastTenth = -1;
        var sinceLine = Stopwatch.StartNew();
        return (done, total, what) =>
        {
            int percent = total <= 0 ? 100 : (int)Math.Clamp(100 * done / total, 0, 100);
            if (percent / 10 == lastTenth && sinceLine.Elapsed < PlainInterval) return;
            lastTenth = percent / 10;
            sinceLine.Restart();
            output.WriteLine($"{title}: {percent,3}% {what}");
            output.Flush();
        };
    }

    public static string Size(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : $"{bytes / (double)(1 << 20):F2} MiB";
}
