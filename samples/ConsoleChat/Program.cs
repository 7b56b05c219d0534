using Sputnik;
using Sputnik.Inference;

// dotnet run --project samples/ConsoleChat -- MODEL.gguf ["message" ...]   (no messages: reads lines from stdin)
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

static IEnumerable<string> ReadLines()
{
    while (Console.ReadLine() is { } line) yield return line;
}
