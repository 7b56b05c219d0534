using Microsoft.Extensions.AI;
using Sputnik;

// dotnet run --project samples/AspNetChat -- --Model MODEL.gguf --urls http://127.0.0.1:5000
// (a relative --Model is relative to the folder you run this from: AspNetChat.csproj keeps `dotnet run` there)
var builder = WebApplication.CreateBuilder(args);
if (builder.Configuration["Model"] is not { Length: > 0 } given)
{
    Console.Error.WriteLine("usage: dotnet run --project samples/AspNetChat -- --Model MODEL.gguf [--urls http://127.0.0.1:5000]");
    return 1;
}
string modelPath = Path.GetFullPath(given);
builder.Services.AddSingleton(_ => SputnikModel.Load(modelPath));
builder.Services.AddChatClient(services => services.GetRequiredService<SputnikModel>().AsChatClient());
var app = builder.Build();

// Load the model now: a wrong path fails here with one line, not with a 500 on every request.
try
{
    app.Services.GetRequiredService<SputnikModel>();
}
catch (Exception e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

// POST /chat {"message": "Hi", "maxTokens": 64} → {"reply", "reasoning", "inputTokens", "outputTokens"}
app.MapPost("/chat", async (ChatRequest request, IChatClient client, CancellationToken ct) =>
{
    var response = await client.GetResponseAsync(request.Message, new ChatOptions { MaxOutputTokens = request.MaxTokens }, ct);
    string reasoning = string.Concat(response.Messages.SelectMany(m => m.Contents).OfType<TextReasoningContent>().Select(r => r.Text));
    return new ChatReply(response.Text, reasoning, response.Usage?.InputTokenCount, response.Usage?.OutputTokenCount);
});

// POST /chat/stream → the answer's text pieces as a streamed JSON array
app.MapPost("/chat/stream", (ChatRequest request, IChatClient client, CancellationToken ct) =>
    client.GetStreamingResponseAsync(request.Message, new ChatOptions { MaxOutputTokens = request.MaxTokens }, ct)
        .Where(update => update.Text.Length > 0)
        .Select(update => update.Text));

app.Run();
return 0;

record ChatRequest(string Message, int? MaxTokens = 256);
record ChatReply(string Reply, string Reasoning, long? InputTokens, long? OutputTokens);
