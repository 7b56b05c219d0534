using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Sputnik.Server.Api;

/// <summary>GET /v1/models, /health, /metrics; POST /tokenize, /detokenize.</summary>
internal static class InfoEndpoints
{
    /// <param name="single">a single-model server's one model; null on a multi-model server</param>
    public static void Map(IEndpointRouteBuilder app, IModelProvider models, ModelHost? single, ServerMetrics metrics, int slots)
    {
        app.MapGet("/v1/models", (HttpContext ctx) =>
            Http.WriteJsonAsync(ctx, 200, new ModelList("list", models.Available.Select(m => m.Card(slots)).ToList()), ServerJson.Api.ModelList));
        // {**id}: hub references (owner/repo:QUANT) have a slash.
        app.MapGet("/v1/models/{**id}", (HttpContext ctx, string id) =>
        {
            var model = single != null ? (id == single.Id ? single.Servable : null) : models.Find(id);
            if (model == null) throw new ApiException(404, $"The model '{id}' does not exist", "model", "model_not_found");
            return Http.WriteJsonAsync(ctx, 200, model.Card(slots), ServerJson.Api.ModelCard);
        });
        app.MapGet("/health", (HttpContext ctx) =>
        {
            var loaded = models.Loaded;
            int active = loaded.Sum(m => m.Host.Scheduler.ActiveCount);
            var each = loaded.Select(m => new HealthModel(m.Host.Id, m.Size, Ollama.OllamaEndpoints.Time(m.ExpiresAt),
                m.Host.Scheduler.SlotCount - m.Host.Scheduler.ActiveCount, m.Host.Scheduler.ActiveCount, m.Host.Scheduler.QueueDepth)).ToList();
            var h = new HealthStatus("ok", single?.Id, loaded.Sum(m => m.Host.Scheduler.SlotCount) - active, active,
                loaded.Sum(m => m.Host.Scheduler.QueueDepth), each);
            return Http.WriteJsonAsync(ctx, 200, h, ServerJson.Api.HealthStatus);
        });
        app.MapGet("/metrics", (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            var load = models.Loaded.Aggregate(default(SchedulerLoad), (sum, m) => sum + m.Host.Scheduler.Load());
            return ctx.Response.WriteAsync(metrics.Render(load), ctx.RequestAborted);
        });
        app.MapPost("/tokenize", ModelRouting.Route(models, single, Tokenize));
        app.MapPost("/detokenize", ModelRouting.Route(models, single, Detokenize));

        static async Task Tokenize(HttpContext ctx, ModelHost host)
        {
            var req = await Http.ReadAsync(ctx, ServerJson.Api.TokenizeRequest);
            if (req.Content == null) throw ApiException.BadRequest("'content' is required", "content");
            var tok = host.Model.Tokenizer;
            int[] ids = tok.Encode(req.Content, addBos: req.AddSpecial ?? false, parseSpecial: req.ParseSpecial ?? true);
            var pieces = req.WithPieces == true ? ids.Select(id => tok.Decode([id], renderSpecial: true)).ToList() : null;
            await Http.WriteJsonAsync(ctx, 200, new TokenizeResponse(ids, pieces), ServerJson.Api.TokenizeResponse);
        }

        static async Task Detokenize(HttpContext ctx, ModelHost host)
        {
            var req = await Http.ReadAsync(ctx, ServerJson.Api.DetokenizeRequest);
            var tok = host.Model.Tokenizer;
            int[] ids = req.Tokens ?? throw ApiException.BadRequest("'tokens' is required", "tokens");
            foreach (int t in ids)
                if (t < 0 || t >= tok.VocabSize) throw ApiException.BadRequest($"token id {t} is outside the vocabulary (0..{tok.VocabSize - 1})", "tokens");
            await Http.WriteJsonAsync(ctx, 200, new DetokenizeResponse(tok.Decode(ids)), ServerJson.Api.DetokenizeResponse);
        }
    }
}
