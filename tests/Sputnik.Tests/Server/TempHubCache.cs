using System.Security.Cryptography;
using Sputnik.Hub;
using Sputnik.Server;
using Sputnik.Tests.Hub;

namespace Sputnik.Tests.Server;

/// <summary>
/// A temporary Hugging Face cache holding two small synthetic qwen2 models, laid out as huggingface_hub lays it out
/// (blobs named by SHA-256, snapshot links, refs/main), for multi-model servers to serve.
/// </summary>
internal sealed class TempHubCache : IDisposable
{
    public const string RepoA = "test/alpha-GGUF", RepoB = "test/beta-GGUF";
    /// <summary>The references the server lists them under, and their short names (file names without .gguf).</summary>
    public const string ModelA = RepoA + ":Q8_0", ModelB = RepoB + ":Q4_K_M", ShortA = "alpha-Q8_0", ShortB = "beta-Q4_K_M";

    public string Root { get; } = Directory.CreateTempSubdirectory("sputnik-multi-cache-").FullName;

    public TempHubCache()
    {
        Put(RepoA, "alpha-Q8_0.gguf", HubPayloads.Q8_0);
        Put(RepoB, "beta-Q4_K_M.gguf", HubPayloads.Q4_K_M);
    }

    /// <summary>Writes <paramref name="bytes"/> as the blob, snapshot link and ref a pull would leave.</summary>
    public void Put(string repo, string file, byte[] bytes)
    {
        var cache = new HubCache(Root);
        string sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        string commit = Convert.ToHexStringLower(SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(repo)));
        Directory.CreateDirectory(Path.GetDirectoryName(cache.BlobPath(repo, sha))!);
        File.WriteAllBytes(cache.BlobPath(repo, sha), bytes);
        cache.Link(repo, commit, file, sha);
        cache.WriteRef(repo, "main", commit);
    }

    /// <summary>Settings for a server on this cache; <paramref name="endpoint"/>: a stand-in hub to pull from.</summary>
    public HubSettings Settings(string endpoint = "http://127.0.0.1:9") => new()
    {
        Endpoint = endpoint, CacheRoot = Root, RetryDelay = TimeSpan.FromMilliseconds(10), StallTimeout = TimeSpan.FromSeconds(2),
    };

    /// <summary>Options for a multi-model server on this cache and the bundled model, small contexts, no web app.</summary>
    public ServerOptions Options(ServerOptions o, string endpoint = "http://127.0.0.1:9") => o with
    {
        ModelPath = "", MultiModel = true, ModelPaths = [TestServer.BundledModelPath], Hub = Settings(endpoint), ContextLength = 64, EnableWebApp = false,
    };

    /// <summary>The bytes the budget counts for a model these options serve.</summary>
    public static long MemorySize(string id, string path, ServerOptions options) => ServableModel.Describe(id, path, options).MemorySize;

    public string PathOf(string repo, string file) =>
        new HubCache(Root).Find(repo, new HubCache(Root).Commit(repo, "main")!, file) ?? throw new FileNotFoundException(file);

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
