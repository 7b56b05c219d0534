using Sputnik;
using Sputnik.Inference;

// dotnet run --project samples/ConsoleChat -- MODEL.gguf ["message" ...]   (no messages: reads lines from stdin)
if (args.Length == 0 || !File.Exists(args[0]))
{
    Console.Error.WriteLine(args.Length == 0 ? "usage: dotnet run --project samples/ConsoleChat -- MODEL.gguf [\"message\" ...]   (no messages: one per line from stdin)" : $"error: model file not found: {Path.GetFullPath(args[0])}");
    return 1;
}
using var model = await SputnikModel.LoadAsync(args[0]);
var chat = model.CreateChat(new ChatOptions { MaxTokens = 256 });

foreach (string message in args.Length > 1 ? args[1..] : ReadLines())
{
    await foreach (var update in chat.SendAsync(message))
    {
        if (update.IsReasoning) Console.ForegroundColor = ConsoleColor.DarkGray; // thinking, dimmed
        Console.Write(update.Text);
        Console.ResetColor();
        if (update.Usage is { } usage)
            Console.WriteLine($"\n[{usage.OutputTokens} tokens ({usage.ReasoningTokens} thinking), {usage.TokensPerSecond:F0} tok/s]");
    }
}
return 0;

static IEnumerable<string> ReadLines()
{
    while (Console.ReadLine() is { } line) yield return line;
}
