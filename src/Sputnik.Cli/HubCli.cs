using Spectre.Console;
using Sputnik.Hub;

namespace Sputnik.Cli;

/// <summary>
/// The CLI's side of the hub: every -m goes through <see cref="Resolve(string)"/>, which pulls a reference that is not
/// cached with progress on stderr (a Spectre.Console bar per file in a terminal, plain lines otherwise) and turns
/// Ctrl+C into "interrupted, the partial is kept" instead of a lost download.
/// </summary>
internal static class HubCli
{
    /// <summary>--token of the current invocation (set by <see cref="Cli.Invoke"/>); HF_TOKEN when null.</summary>
    public static string? Token { get; set; }

    public static ModelHub CreateHub(Action<PullProgress>? progress = null) =>
        new(HubSettings.FromEnvironment(Token)) { Notice = Say, Progress = progress };

    public static void Say(string message) => Console.Error.WriteLine($"sputnik: {Sputnik.Gguf.DisplayText.Safe(message, 400)}");

    /// <summary>A path unchanged; a hub reference as the local path of its (first) file, pulled first if need be.</summary>
    public static string Resolve(string pathOrReference)
    {
        if (!ModelReference.TryParse(pathOrReference, out var reference)) return pathOrReference;
        try
        {
            return Resolve(reference!, refresh: false).Path;
        }
        catch (HubException e) when (reference!.FilePath != null && e.Kind is HubErrorKind.NotFound or HubErrorKind.Offline or HubErrorKind.AccessDenied)
        {
            // owner/repo/file.gguf may have been meant as a local path: say that no such file exists either.
            throw new HubException(e.Kind, $"no local file {pathOrReference}; as a hub reference: {e.Message}");
        }
    }

    /// <summary>Resolves a reference; <paramref name="refresh"/> asks the hub even when the cache has it (`sputnik pull`).</summary>
    public static ResolvedModel Resolve(ModelReference reference, bool refresh)
    {
        if (!refresh && CreateHub().FindCached(reference, exact: true) != null)
            return CreateHub().ResolveAsync(reference, refresh: false).GetAwaiter().GetResult(); // no network, no progress
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true; // stop the download, keep the process: the partial file must be closed cleanly
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            var resolved = WithProgress(hub => hub.ResolveAsync(reference, refresh, cancel.Token));
            if (resolved.Downloaded > 0)
                Say($"downloaded {ModelHub.Size(resolved.Downloaded)} of {reference.Repo} into {resolved.Path}");
            return resolved;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            throw new HubException(HubErrorKind.Interrupted, $"download of {reference} interrupted; the partial file is kept — run the command again to resume");
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static ResolvedModel WithProgress(Func<ModelHub, Task<ResolvedModel>> work)
    {
        if (!ProgressBar.Animated)
        {
            var reporters = new Dictionary<int, Action<long, long, string>>();
            return work(CreateHub(p =>
            {
                lock (reporters)
                {
                    if (!reporters.TryGetValue(p.Index, out var report))
                        reporters[p.Index] = report = ProgressBar.PlainReporter($"pull {p.File}{(p.Count > 1 ? $" [{p.Index + 1}/{p.Count}]" : "")}", Console.Error);
                    report(p.Done, p.Total, $"{ModelHub.Size(p.Done)} of {ModelHub.Size(p.Total)}");
                }
            })).GetAwaiter().GetResult();
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var tasks = new Dictionary<int, ProgressTask>();
                return work(CreateHub(p =>
                {
                    lock (tasks)
                    {
                        if (!tasks.TryGetValue(p.Index, out var task))
                            tasks[p.Index] = task = ctx.AddTask(Markup.Escape(p.Count > 1 ? $"[{p.Index + 1}/{p.Count}] {p.File}" : p.File), maxValue: Math.Max(1, p.Total));
                        task.Value = p.Done;
                    }
                })).GetAwaiter().GetResult();
            });
    }
}
