using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Sputnik.Server.Api;

/// <summary>
/// llama-server's GET /lora-adapters (the adapters loaded with --lora / --lora-scaled: id, path, global scale) and
/// POST /lora-adapters ([{"id", "scale"}]: sets the global scales, adapters not listed to 0). A request's own
/// "lora" field overrides the global scales for that request. Single-model servers only.
/// </summary>
internal static class LoraEndpoints
{
    public static void Map(IEndpointRouteBuilder app, ModelHost host)
    {
        app.MapGet("/lora-adapters", (HttpContext ctx) => WriteAsync(ctx, List(host)));
        app.MapPost("/lora-adapters", async (HttpContext ctx) =>
        {
            byte[] body = await Http.ReadBodyAsync(ctx, host.BodyLimit);
            IReadOnlyList<(int Id, float Scale)> scales;
            try
            {
                using var doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 8 });
                scales = RequestReader.LoraList(doc.RootElement, "body");
            }
            catch (JsonException ex)
            {
                throw ApiException.BadRequest($"the request body is not valid JSON: {ex.Message}", code: "invalid_json");
            }
            host.SetGlobalAdapterScales(scales);
            await WriteAsync(ctx, new JsonObject { ["success"] = true });
        });
    }

    private static JsonArray List(ModelHost host)
    {
        var list = new JsonArray();
        var adapters = host.Model.Model.Adapters;
        var scales = host.Model.AdapterScales;
        for (int id = 0; id < adapters.Count; id++)
            list.Add(new JsonObject { ["id"] = id, ["path"] = adapters[id].Path, ["scale"] = scales[id] });
        return list;
    }

    private static Task WriteAsync(HttpContext ctx, JsonNode value)
    {
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(value.ToJsonString(), ctx.RequestAborted);
    }
}
