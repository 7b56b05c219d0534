using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Sputnik.Cli.Commands;

/// <summary>
/// `sputnik embed -m MODEL TEXT… [--dimensions N]`: one L2-normalised embedding per text, printed as JSON in the shape
/// of the server's POST /v1/embeddings answer.
/// </summary>
internal static class EmbedCommand
{
    public static Command Create()
    {
        var model = CliOptions.ModelOrDefault();
        var texts = new Argument<string[]>("text") { Description = "Texts to embed (one vector each)", Arity = ArgumentArity.OneOrMore };
        var dimensions = new Option<int?>("--dimensions") { Description = "Keep the first N components, normalised again (Matryoshka truncation)" };
        var threads = CliOptions.Threads();
        var ctx = new Option<int>("--ctx-size", "-c") { Description = "Longest input in tokens (0 = model's context, capped at 4096)" }.AtLeast(0);
        var cmd = new Command("embed", "Print embeddings of texts as JSON (pooling as the GGUF says: last token, CLS or mean)")
        {
            model, texts, dimensions, threads, ctx,
        };
        cmd.Validators.Add(r =>
        {
            if (r.GetValue(dimensions) is < 1) r.AddError("--dimensions must be at least 1");
        });
        cmd.SetAction(r =>
        {
            using var m = SputnikModel.Load(CliOptions.ResolveModel(r.GetValue(model)), new ModelOptions { Threads = r.GetValue(threads), ContextLength = r.GetValue(ctx) });
            using var generator = m.AsEmbeddingGenerator();
            var inputs = r.GetValue(texts)!;
            int? dims = r.GetValue(dimensions);
            if (dims > generator.Dimensions) throw new ArgumentException($"--dimensions is {dims}; this model's embeddings have {generator.Dimensions}");
            var result = generator.GenerateAsync(inputs, new EmbeddingGenerationOptions { Dimensions = dims }).GetAwaiter().GetResult();
            var json = new MemoryStream();
            using (var w = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                w.WriteStartObject();
                w.WriteString("object", "list");
                w.WriteStartArray("data");
                for (int i = 0; i < result.Count; i++)
                {
                    w.WriteStartObject();
                    w.WriteString("object", "embedding");
                    w.WriteNumber("index", i);
                    w.WriteStartArray("embedding");
                    foreach (float v in result[i].Vector.Span) w.WriteNumberValue(v);
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteString("model", generator.ModelId);
                w.WriteStartObject("usage");
                w.WriteNumber("prompt_tokens", result.Usage?.InputTokenCount ?? 0);
                w.WriteNumber("total_tokens", result.Usage?.TotalTokenCount ?? 0);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            Console.Out.WriteLine(System.Text.Encoding.UTF8.GetString(json.GetBuffer(), 0, (int)json.Length));
            return 0;
        });
        return cmd;
    }
}
