using Microsoft.AspNetCore.Http;

namespace Sputnik.Server.Api;

/// <summary>
/// The OpenAI-shaped endpoints on a multi-model server: the body's "model" picks the model (loaded if need be), and
/// the endpoint then reads the same body as on a single-model server. A single-model server hands its one model to
/// every request, whatever it names.
/// </summary>
internal static class ModelRouting
{
    public static RequestDelegate Route(IModelProvider models, ModelHost? single, Func<HttpContext, ModelHost, Task> endpoint)
    {
        if (single != null) return ctx => endpoint(ctx, single);
        return async ctx =>
        {
            using var lease = await AcquireAsync(ctx, models);
            await endpoint(ctx, lease.Host);
        };
    }

    /// <summary>
    /// Reads the body (bounded by --max-body), gets the model its "model" names, and puts the body back for the
    /// endpoint to read. Errors are OpenAI's: 400 without a model, 404 model_not_found for a name nothing goes by.
    /// </summary>
    private static async Task<ModelLease> AcquireAsync(HttpContext ctx, IModelProvider models)
    {
        byte[] body = await Http.ReadBodyAsync(ctx);
        string? name;
        TimeSpan? keepAlive;
        using (var doc = RequestReader.ParseBody(body))
        {
            var f = new JsonFields(doc.RootElement);
            name = f.String("model");
            keepAlive = Ollama.OllamaReader.KeepAlive(f); // Ollama's extension, accepted here too
        }
        if (string.IsNullOrEmpty(name))
            throw ApiException.BadRequest("'model' is required: this server serves several models (GET /v1/models lists them)", "model");
        if (models.Find(name) == null) throw new ApiException(404, $"The model '{name}' does not exist", "model", "model_not_found");
        var lease = await models.AcquireAsync(name, keepAlive, ctx.RequestAborted);
        ctx.Request.Body = new MemoryStream(body, 0, body.Length, writable: false);
        return lease;
    }
}
