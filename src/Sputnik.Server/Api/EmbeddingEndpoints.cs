using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Sputnik.Server.Api.Ollama;

namespace Sputnik.Server.Api;

/// <summary>
/// POST /v1/embeddings (OpenAI's shape), /api/embed and the older /api/embeddings (Ollama's). Inputs are tokenized on
/// the request's thread and embedded on the scheduler's, a pack of inputs per forward pass and turn, so chat streams
/// keep flowing between packs.
/// </summary>
internal static class EmbeddingEndpoints
{
    /// <summary>OpenAI's limit on inputs per request.</summary>
    public const int MaxInputs = 2048;

    public static async Task OpenAi(HttpContext ctx, ModelHost host)
    {
        List<int[]> inputs;
        bool base64;
        int? dimensions;
        using (var doc = RequestReader.ParseBody(await Http.ReadBodyAsync(ctx)))
        {
            var f = new JsonFields(doc.RootElement);
            f.String("model"); // any name is served by the one model, as llama-server does
            f.String("user");
            base64 = f.String("encoding_format") switch
            {
                null or "float" => false,
                "base64" => true,
                var other => throw ApiException.BadRequest($"'encoding_format' is '{other}'; it must be float or base64", "encoding_format"),
            };
            dimensions = (int?)f.Integer("dimensions", 1, host.Model.Model.Config.Dim);
            inputs = OpenAiInputs(f, host);
        }
        var vectors = await EmbedAsync(host, inputs, normalize: true, ctx.RequestAborted);
        int tokens = inputs.Sum(t => t.Length);
        var usage = new EmbeddingUsage(tokens, tokens);
        if (base64)
        {
            var data = vectors.Select((v, i) => new EmbeddingBase64("embedding", i, Convert.ToBase64String(MemoryMarshal.AsBytes(Shorten(v, dimensions).AsSpan())))).ToList();
            await Http.WriteJsonAsync(ctx, 200, new EmbeddingListBase64("list", data, host.Id, usage), ServerJson.Api.EmbeddingListBase64);
        }
        else
        {
            var data = vectors.Select((v, i) => new EmbeddingFloats("embedding", i, Shorten(v, dimensions))).ToList();
            await Http.WriteJsonAsync(ctx, 200, new EmbeddingList("list", data, host.Id, usage), ServerJson.Api.EmbeddingList);
        }
    }

    /// <summary>input: a string, an array of strings, an array of token ids, or an array of such arrays.</summary>
    private static List<int[]> OpenAiInputs(JsonFields f, ModelHost host)
    {
        const string Param = "input";
        var input = f.Get(Param) ?? throw ApiException.BadRequest("'input' is required", Param);
        var result = new List<int[]>();
        switch (input.ValueKind)
        {
            case JsonValueKind.String:
                result.Add(Text(host, input.GetString()!, Param, truncate: false));
                break;
            case JsonValueKind.Array when input.GetArrayLength() == 0:
                throw ApiException.BadRequest("'input' is an empty array; send at least one input", Param);
            case JsonValueKind.Array when input.GetArrayLength() > MaxInputs:
                throw ApiException.BadRequest($"'input' has {input.GetArrayLength()} entries; at most {MaxInputs} are allowed", Param);
            case JsonValueKind.Array when input[0].ValueKind == JsonValueKind.Number:
                result.Add(TokenIds(host, input, Param));
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var e in input.EnumerateArray())
                {
                    string at = $"{Param}[{i++}]";
                    result.Add(e.ValueKind switch
                    {
                        JsonValueKind.String => Text(host, e.GetString()!, at, truncate: false),
                        JsonValueKind.Array => TokenIds(host, e, at),
                        _ => throw ApiException.BadRequest($"'{at}' must be a string or an array of token ids", at),
                    });
                }
                break;
            default:
                throw f.Bad(Param, "a string, an array of strings, or an array of token ids");
        }
        return result;
    }

    private static int[] TokenIds(ModelHost host, JsonElement array, string at)
    {
        int vocab = host.Model.Tokenizer.VocabSize;
        int n = array.GetArrayLength();
        if (n == 0) throw ApiException.BadRequest($"'{at}' is empty; an input needs at least one token", at);
        if (n > host.Model.ContextLength) throw TooLong(host, n, at);
        var ids = new int[n];
        int i = 0;
        foreach (var e in array.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id) || (uint)id >= (uint)vocab)
                throw ApiException.BadRequest($"'{at}' must hold token ids between 0 and {vocab - 1}", at);
            ids[i++] = id;
        }
        return ids;
    }

    /// <summary>A text input's tokens; longer than the context, it is cut (Ollama's default) or refused.</summary>
    private static int[] Text(ModelHost host, string text, string at, bool truncate)
    {
        if (text.Length == 0) throw ApiException.BadRequest($"'{at}' is an empty string; an input needs some text", at);
        int ctxLen = host.Model.ContextLength;
        if (!truncate) Http.CheckPromptText(host, text.Length, at);
        // No token spells more than MaxTokenBytes bytes (≥ characters): text past ctx × that is cut anyway.
        else if (text.Length > (long)ctxLen * host.MaxTokenBytes) text = text[..(ctxLen * host.MaxTokenBytes)];
        var tokens = host.Embedder.Tokenize(text);
        if (tokens.Length <= ctxLen) return tokens;
        if (!truncate) throw TooLong(host, tokens.Length, at);
        var tok = host.Model.Tokenizer;
        var kept = tokens[..ctxLen];
        if (tok.ClosingId is { } closing && tokens[^1] == closing) kept[^1] = closing; // the end marker (EOS, [SEP]) last-token pooling reads
        return kept;
    }

    private static ApiException TooLong(ModelHost host, int tokens, string at) =>
        ApiException.BadRequest($"This model's maximum context length is {host.Model.ContextLength} tokens, however you requested {tokens} tokens in '{at}'. Please reduce your input.",
            at, "context_length_exceeded");

    private static float[] Shorten(float[] v, int? dimensions) =>
        dimensions is { } d && d < v.Length ? Sputnik.Inference.Embedder.Shorten(v, d) : v;

    /// <summary>
    /// Embeds the inputs on the scheduler's thread, a pack of them per turn (one forward pass over up to
    /// <see cref="Sputnik.Inference.Embedder.PackTokens"/> tokens), so chat streams keep flowing between packs.
    /// </summary>
    public static async Task<float[][]> EmbedAsync(ModelHost host, List<int[]> inputs, bool normalize, CancellationToken ct)
    {
        Sputnik.Inference.Embedder embedder;
        try
        {
            embedder = host.Embedder;
        }
        catch (NotSupportedException ex)
        {
            throw ApiException.BadRequest(ex.Message, "model", "embeddings_not_supported");
        }
        var result = new float[inputs.Count][];
        for (int i = 0; i < inputs.Count;)
        {
            int start = i, count = embedder.PackSize(inputs, i);
            try
            {
                await host.Scheduler.RunExclusiveAsync(() =>
                {
                    embedder.EmbedPack(inputs, start, count, result, normalize);
                    return count;
                }, ct);
            }
            catch (NotSupportedException ex)
            {
                throw ApiException.BadRequest(ex.Message, "model", "embeddings_not_supported");
            }
            i += count;
        }
        return result;
    }

    /// <summary>POST /api/embed: {"model", "input": text or [texts], "truncate", "dimensions"} → {"embeddings": [[…]]}.</summary>
    public static async Task Ollama(HttpContext ctx, IModelProvider models)
    {
        var started = Stopwatch.GetTimestamp();
        var (bytes, name, lease) = await OllamaChat.AcquireAsync(ctx, models);
        var host = lease.Host;
        var inputs = new List<int[]>();
        int? dimensions;
        using (var doc = RequestReader.ParseBody(bytes))
        {
            var f = new JsonFields(doc.RootElement);
            bool truncate = f.Bool("truncate") ?? true;
            dimensions = (int?)f.Integer("dimensions", 0, int.MaxValue) is > 0 and var d ? d : null;
            switch (f.Get("input"))
            {
                case null:
                    break;
                case { ValueKind: JsonValueKind.String } s:
                    if (s.GetString()!.Length > 0) inputs.Add(Text(host, s.GetString()!, "input", truncate));
                    break;
                case { ValueKind: JsonValueKind.Array } a:
                    if (a.GetArrayLength() > MaxInputs) throw ApiException.BadRequest($"'input' has {a.GetArrayLength()} entries; at most {MaxInputs} are allowed", "input");
                    int i = 0;
                    foreach (var e in a.EnumerateArray())
                    {
                        string at = $"input[{i++}]";
                        if (e.ValueKind != JsonValueKind.String) throw ApiException.BadRequest("invalid input type", at);
                        inputs.Add(Text(host, e.GetString()!, at, truncate));
                    }
                    break;
                default:
                    throw ApiException.BadRequest("invalid input type", "input");
            }
        }
        var vectors = await EmbedAsync(host, inputs, normalize: true, ctx.RequestAborted);
        var response = new OllamaEmbedResponse(name, vectors.Select(v => Shorten(v, dimensions)).ToList(),
            Stopwatch.GetElapsedTime(started).Ticks * 100 + lease.LoadTime.Ticks * 100, lease.LoadTime.Ticks * 100, inputs.Sum(t => t.Length));
        await Http.WriteJsonAsync(ctx, 200, response, OllamaJson.Api.OllamaEmbedResponse);
    }

    /// <summary>POST /api/embeddings (superseded by /api/embed): {"model", "prompt"} → {"embedding": […]}, not normalised, as Ollama answers it.</summary>
    public static async Task OllamaLegacy(HttpContext ctx, IModelProvider models)
    {
        var (bytes, _, lease) = await OllamaChat.AcquireAsync(ctx, models);
        string prompt;
        using (var doc = RequestReader.ParseBody(bytes))
            prompt = new JsonFields(doc.RootElement).String("prompt") ?? "";
        float[] vector = [];
        if (prompt.Length > 0)
            vector = (await EmbedAsync(lease.Host, [Text(lease.Host, prompt, "prompt", truncate: true)], normalize: false, ctx.RequestAborted))[0];
        await Http.WriteJsonAsync(ctx, 200, new OllamaLegacyEmbedding(vector), OllamaJson.Api.OllamaLegacyEmbedding);
    }
}
