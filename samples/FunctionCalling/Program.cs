using System.ComponentModel;
using Microsoft.Extensions.AI;
using Sputnik;

// dotnet run --project samples/FunctionCalling -- MODEL.gguf   (a tool-calling model, e.g. Qwen2.5-Instruct)
if (args.Length == 0 || !File.Exists(args[0]))
{
    Console.Error.WriteLine(args.Length == 0 ? "usage: dotnet run --project samples/FunctionCalling -- MODEL.gguf   (a tool-calling model, e.g. Qwen2.5-Instruct)" : $"error: model file not found: {Path.GetFullPath(args[0])}");
    return 1;
}
using var model = await SputnikModel.LoadAsync(args[0]);
IChatClient client = new ChatClientBuilder(model.AsChatClient())
    .UseFunctionInvocation() // runs the <tool_call>s the model writes and sends the results back
    .Build();

var options = new ChatOptions { Tools = [AIFunctionFactory.Create(GetWeather)], MaxOutputTokens = 256 };
var response = await client.GetResponseAsync("What is the weather like in Paris?", options);
Console.WriteLine(response.Text);
Console.WriteLine($"[{response.Usage?.TotalTokenCount} tokens, {response.Messages.Count} messages]");
return 0;

[Description("Gets the current weather of a city")]
static string GetWeather([Description("The city name")] string city) => $"Sunny, 21 °C in {city}";
