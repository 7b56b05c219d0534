using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Spectre.Console;
using Sputnik.Inference;

namespace Sputnik.Cli.Commands;

/// <summary>
/// `sputnik chat [-m MODEL]` — a terminal chat using the model's template. Thinking streams dimmed and folds
/// into a one-line summary when the answer starts; Ctrl+C stops the answer, not the program, and at the prompt ends
/// the chat (exit code 0). With stdin redirected it reads one message per line and prints plain text, so it can be
/// scripted.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model", "-m") { Description = "GGUF model to chat with, or a hub reference (owner/repo[:QUANT])" };
        var threads = CliOptions.Threads();
        var ctx = new Option<int>("--ctx-size", "-c") { Description = "Context length (0 = model's, capped at 4096)" }.AtLeast(0);
        var temp = new Option<float>("--temp") { Description = "Temperature", DefaultValueFactory = _ => 0.6f }.Temperature();
        var seed = new Option<ulong?>("--seed", "-s") { Description = "Random seed" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Most tokens per answer", DefaultValueFactory = _ => 2048 }.AtLeast(1);
        var system = new Option<string?>("--system") { Description = "System prompt" };
        var budget = new Option<int?>("--budget") { Description = "Thinking budget in tokens" }.AtLeast(0);
        var noThink = new Option<bool>("--no-think") { Description = "Start with thinking off" };
        var ctk = CliOptions.CacheTypeK();
        var ctv = CliOptions.CacheTypeV();
        var shift = CliOptions.ContextShift();
        var cmd = new Command("chat", "Chat with a model in the terminal") { model, threads, ctx, temp, seed, maxTokens, system, budget, noThink, ctk, ctv, shift };
        var speculation = new SpeculationFlags();
        speculation.AddTo(cmd);
        var lora = new LoraFlags();
        lora.AddTo(cmd);
        cmd.SetAction(r =>
        {
            string path = CliOptions.ResolveModel(r.GetValue(model));
            var loadOptions = new ModelOptions { Threads = r.GetValue(threads), ContextLength = r.GetValue(ctx), KvType = r.GetValue(ctk), KvTypeV = r.GetValue(ctv), LoraAdapters = lora.Read(r) };
            using var m = SputnikModel.Load(path, loadOptions);
            var spec = speculation.Read(r, m, loadOptions);
            using var draftModel = spec?.DraftModel;
            var session = new ChatSession(m, new ChatOptions
            {
                Sampling = Sampling(r, m, temp, seed),
                MaxTokens = r.GetValue(maxTokens),
                Thinking = !r.GetValue(noThink),
                ThinkingBudget = r.GetValue(budget),
                ContextShift = r.GetValue(shift),
                Speculation = spec,
            })
            { SystemPrompt = r.GetValue(system) };
            return new ChatLoop(session, interactive: !Console.IsInputRedirected && !Console.IsOutputRedirected).Run();
        });
        return cmd;
    }

    // Chat's own default temperature, then the model's recommendation, then what the user typed.
    private static SamplingOptions Sampling(ParseResult r, SputnikModel m, Option<float> temp, Option<ulong?> seed)
    {
        var s = m.RecommendedSampling(new SamplingOptions { Temperature = r.GetValue(temp) });
        if (CliOptions.Given(r, temp)) s = s with { Temperature = r.GetValue(temp) };
        return s with { Seed = r.GetValue(seed) };
    }
}

/// <summary>The read–answer loop and the slash commands.</summary>
internal sealed class ChatLoop(ChatSession session, bool interactive)
{
    private CancellationTokenSource? _turn;
    private string _lastReasoning = "";

    public int Run()
    {
        Console.CancelKeyPress += OnCancel;
        try
        {
            if (interactive)
                AnsiConsole.MarkupLine("[grey]Sputnik chat — /help for commands, Ctrl+C stops an answer, /exit quits.[/]");
            while (true)
            {
                if (interactive) AnsiConsole.Markup("[bold green]>[/] ");
                string? line = Console.ReadLine();
                if (line == null) return 0;
                line = line.Trim();
                if (line.Length == 0) continue;
                if (line.StartsWith('/'))
                {
                    if (!Command(line)) return 0;
                    continue;
                }
                Answer(line);
            }
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
    }

    private void OnCancel(object? sender, ConsoleCancelEventArgs e)
    {
        e.Cancel = true; // the runtime would otherwise kill the process mid-line with exit code 130
        if (_turn is { IsCancellationRequested: false } turn)
        {
            turn.Cancel(); // stop the answer, keep the program
            return;
        }
        // Ctrl+C at the prompt (or again while an answer stops) ends the chat as /exit does: the main thread is
        // blocked in ReadLine, which nothing can interrupt, so leave from here, on a fresh line, with success.
        Console.WriteLine();
        Console.Out.Flush();
        Environment.Exit(0);
    }

    private void Answer(string text)
    {
        using var turn = _turn = new CancellationTokenSource();
        var sw = Stopwatch.StartNew();
        var reasoning = new System.Text.StringBuilder();
        double thinkSeconds = 0;
        bool answering = false;
        try
        {
            foreach (var u in session.Send(text, turn.Token))
            {
                if (u.Reasoning.Length > 0)
                {
                    if (reasoning.Length == 0) Write("Thinking…\n", dim: true);
                    reasoning.Append(u.Reasoning);
                    Write(u.Reasoning, dim: true);
                }
                if (u.Content.Length > 0)
                {
                    if (!answering)
                    {
                        answering = true;
                        thinkSeconds = sw.Elapsed.TotalSeconds;
                        if (reasoning.Length > 0) FoldThinking(reasoning.ToString(), thinkSeconds);
                    }
                    Write(u.Content, dim: false);
                }
            }
        }
        catch (ContextOverflowException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return;
        }
        finally
        {
            _turn = null;
        }
        _lastReasoning = reasoning.ToString();
        Console.WriteLine();
        var s = session.LastStats!;
        string status = turn.IsCancellationRequested ? " (stopped)" : "";
        string line = $"[{s.GeneratedTokens} tokens, {s.GenerationTokensPerSecond:F1} tok/s, prompt {s.PromptTokens - s.CachedPromptTokens} new + {s.CachedPromptTokens} cached{status}]";
        if (interactive) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]");
        else Console.Error.WriteLine(line);
    }

    // Replace the streamed thinking with a one-line summary; /thinking shows it again.
    private void FoldThinking(string reasoning, double seconds)
    {
        if (!interactive)
        {
            Console.WriteLine();
            Console.WriteLine();
            return;
        }
        // Rows to climb back to the "Thinking…" header: one per printed newline plus soft wraps of long lines.
        int width = Math.Max(20, Console.WindowWidth);
        string[] segments = ("Thinking…\n" + reasoning).Split('\n');
        int up = segments[..^1].Sum(l => 1 + l.Length / width) + segments[^1].Length / width;
        Console.Write($"\r\u001b[{up}A\u001b[J");
        AnsiConsole.MarkupLine($"[grey]▸ Thought for {seconds:F1}s ({reasoning.Length} chars) — /thinking to expand[/]");
    }

    private void Write(string text, bool dim)
    {
        if (interactive && dim) AnsiConsole.Markup($"[grey]{Markup.Escape(text)}[/]");
        else if (interactive) AnsiConsole.Write(new Text(text));
        else if (dim) Console.Write(text);
        else Console.Write(text);
        Console.Out.Flush();
    }

    /// <summary>Runs a slash command; false means quit.</summary>
    private bool Command(string line)
    {
        string[] parts = line.Split(' ', 2, StringSplitOptions.TrimEntries);
        string arg = parts.Length > 1 ? parts[1] : "";
        switch (parts[0])
        {
            case "/exit" or "/quit":
                return false;
            case "/help":
                Say("/think on|off   thinking before answering\n/budget N       thinking budget in tokens (0 = none, 'off' = unlimited)\n" +
                    "/system TEXT    set the system prompt\n/clear          forget the conversation\n/save FILE      save the conversation as JSON\n" +
                    "/load FILE      load a saved conversation\n/thinking       show the last answer's thinking\n/exit           quit");
                break;
            case "/think":
                if (arg is not ("on" or "off")) { Say("usage: /think on|off"); break; }
                session.Options = session.Options with { Thinking = arg == "on" };
                Say($"thinking {arg}{(session.SupportsThinking ? "" : " (this model has no <think> support)")}");
                break;
            case "/budget":
                if (arg == "off") { session.Options = session.Options with { ThinkingBudget = null }; Say("thinking budget: unlimited"); break; }
                if (!int.TryParse(arg, out int n) || n < 0) { Say("usage: /budget N (tokens, 0 or more) or /budget off"); break; }
                session.Options = session.Options with { ThinkingBudget = n };
                Say($"thinking budget: {n} tokens");
                break;
            case "/system":
                session.SystemPrompt = arg.Length > 0 ? arg : null;
                Say(arg.Length > 0 ? "system prompt set" : "system prompt cleared");
                break;
            case "/clear":
                session.Clear();
                Say("conversation cleared");
                break;
            case "/save":
                if (arg.Length == 0) { Say("usage: /save FILE"); break; }
                Try(() => { ChatFile.Save(arg, session); Say($"saved {session.Messages.Count} messages to {arg}"); });
                break;
            case "/load":
                if (arg.Length == 0) { Say("usage: /load FILE"); break; }
                Try(() => { ChatFile.Load(arg, session); Say($"loaded {session.Messages.Count} messages from {arg}"); });
                break;
            case "/thinking":
                Say(_lastReasoning.Length > 0 ? _lastReasoning : "(no thinking in the last answer)");
                break;
            default:
                Say($"unknown command {parts[0]} — /help lists them");
                break;
        }
        return true;
    }

    private void Say(string text)
    {
        if (interactive) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(text)}[/]");
        else Console.WriteLine(text);
    }

    private void Try(Action action)
    {
        try { action(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or ArgumentException)
        {
            Say($"error: {e.Message}");
        }
    }
}
