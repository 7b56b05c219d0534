using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Sputnik.Server.Api;

/// <summary>GET /v1/models, /health, /metrics; POST /tokenize, /detokenize.</summary>
internal static class InfoEndpoints
{
    public static void Map(IEndpointRouteBuilder app, ModelHost host)
    {
        app.MapGet("/v1/models", (HttpContext ctx) =>
            Http.WriteJsonAsync(ctx, 200, new ModelList("list", [host.Card()]), ServerJson.Api.ModelList));
        app.MapGet("/v1/models/{id}", (HttpContext ctx, string id) =>
        {
            if (id != host.Id) throw new ApiException(404, $"The model '{id}' does not exist", "model", "model_not_found");
            return Http.WriteJsonAsync(ctx, 200, host.Card(), ServerJson.Api.ModelCard);
        });
        app.MapGet("/health", (HttpContext ctx) =>
        {
            int active = host.Scheduler.ActiveCount;
            var h = new HealthStatus("ok", host.Id, host.Scheduler.SlotCount - active, active, host.Scheduler.QueueDepth);
            return Http.WriteJsonAsync(ctx, 200, h, ServerJson.Api.HealthStatus);
        });
        app.MapGet("/metrics", (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            var s = host.Scheduler;
            return ctx.Response.WriteAsync(host.Metrics.Render(s.QueueDepth, s.ActiveCount, s.SlotCount), ctx.RequestAborted);
        });
        app.MapPost("/tokenize", async (HttpContext ctx) =>
        {
            var req = await Http.ReadAsync(ctx, ServerJson.Api.TokenizeRequest);
            if (req.Content == null) throw ApiException.BadRequest("'content' is required", "content");
            var tok = host.Model.Tokenizer;
            int[] ids = tok.Encode(req.Content, addBos: req.AddSpecial ?? false, parseSpecial: req.ParseSpecial ?? true);
            var pieces = req.WithPieces == true ? ids.Select(id => tok.Decode([id], renderSpecial: true)).ToList() : null;
            await Http.WriteJsonAsync(ctx, 200, new TokenizeResponse(ids, pieces), ServerJson.Api.TokenizeResponse);
        });
        app.MapPost("/detokenize", async (HttpContext ctx) =>
        {
            var req = await Http.ReadAsync(ctx, ServerJson.Api.DetokenizeRequest);
            var tok = host.Model.Tokenizer;
            int[] ids = req.Tokens ?? throw ApiException.BadRequest("'tokens' is required", "tokens");
            foreach (int t in ids)
                if (t < 0 || t >= tok.VocabSize) throw ApiException.BadRequest($"token id {t} is outside the vocabulary (0..{tok.VocabSize - 1})", "tokens");
            await Http.WriteJsonAsync(ctx, 200, new DetokenizeResponse(tok.Decode(ids)), ServerJson.Api.DetokenizeResponse);
        });
    }
}
