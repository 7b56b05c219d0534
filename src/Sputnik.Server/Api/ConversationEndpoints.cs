using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Sputnik.Server.Storage;

namespace Sputnik.Server.Api;

/// <summary>The web app's history: /api/conversations CRUD and messages.</summary>
internal static class ConversationEndpoints
{
    private static readonly HashSet<string> Roles = ["system", "user", "assistant"];

    public static void Map(IEndpointRouteBuilder app, ConversationStore store)
    {
        app.MapGet("/api/conversations", (HttpContext ctx) =>
            Http.WriteJsonAsync(ctx, 200, new ConversationList("list", store.List()), ServerJson.Api.ConversationList));
        app.MapPost("/api/conversations", async (HttpContext ctx) =>
        {
            var body = ctx.Request.ContentLength is null or 0 && !ctx.Request.Headers.ContainsKey("Transfer-Encoding")
                ? new ConversationPatch(null) : await Http.ReadAsync(ctx, ServerJson.Api.ConversationPatch);
            await Http.WriteJsonAsync(ctx, 201, store.Create(body.Title), ServerJson.Api.ConversationDto);
        });
        app.MapGet("/api/conversations/{id}", (HttpContext ctx, string id) =>
            Http.WriteJsonAsync(ctx, 200, store.Get(id) ?? throw NotFound(id), ServerJson.Api.ConversationDto));
        app.MapPatch("/api/conversations/{id}", async (HttpContext ctx, string id) =>
        {
            var body = await Http.ReadAsync(ctx, ServerJson.Api.ConversationPatch);
            if (string.IsNullOrWhiteSpace(body.Title)) throw ApiException.BadRequest("'title' is required", "title");
            if (!store.Rename(id, body.Title)) throw NotFound(id);
            await Http.WriteJsonAsync(ctx, 200, store.Get(id)! with { Messages = null }, ServerJson.Api.ConversationDto);
        });
        app.MapDelete("/api/conversations/{id}", (HttpContext ctx, string id) =>
        {
            if (!store.Delete(id)) throw NotFound(id);
            ctx.Response.StatusCode = 204;
            return Task.CompletedTask;
        });
        app.MapPost("/api/conversations/{id}/messages", async (HttpContext ctx, string id) =>
        {
            var m = await Http.ReadAsync(ctx, ServerJson.Api.NewMessage);
            if (m.Role == null || !Roles.Contains(m.Role)) throw ApiException.BadRequest("'role' must be system, user or assistant", "role");
            var saved = store.Append(id, m.Role, m.Content ?? "", m.ReasoningContent, m.Meta) ?? throw NotFound(id);
            await Http.WriteJsonAsync(ctx, 201, saved, ServerJson.Api.MessageDto);
        });
        app.MapDelete("/api/conversations/{id}/messages/{messageId:long}", (HttpContext ctx, string id, long messageId) =>
        {
            store.Truncate(id, messageId);
            ctx.Response.StatusCode = 204;
            return Task.CompletedTask;
        });
    }

    private static ApiException NotFound(string id) => new(404, $"no conversation '{id}'", code: "not_found");
}
