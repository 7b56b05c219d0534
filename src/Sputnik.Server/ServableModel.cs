using System.Text;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Server.Api;
using Sputnik.Tensors;
using Sputnik.Tokenizers;

namespace Sputnik.Server;

/// <summary>What the API says about a model (its /v1/models card, its Ollama details), loaded or not.</summary>
internal sealed record ModelFacts(string Architecture, long Parameters, string QuantizationLevel, int ContextLength, int TrainedContext,
    int VocabSize, bool ChatTemplate, bool Thinking, int EmbeddingLength);

/// <summary>
/// A model a request may name: its served name, its file (the first shard of a split set), what it is, and the
/// memory it is counted for when loaded (<see cref="MemorySize"/>: the file, which the OS keeps in its page cache
/// once mapped, plus every slot's full KV cache).
/// </summary>
internal sealed record ServableModel(string Id, IReadOnlyList<string> Paths, long FileSize, DateTime Modified, string Digest, ModelFacts Facts,
    long MemorySize)
{
    public string Path => Paths[0];

    public long Created => new DateTimeOffset(DateTime.SpecifyKind(Modified, DateTimeKind.Utc)).ToUnixTimeSeconds();

    public ModelCard Card(int slots)
    {
        var f = Facts;
        return new ModelCard(Id, "model", Created, "sputnik", f.ContextLength,
            new ModelMeta(f.Architecture, f.Parameters, f.ContextLength, f.VocabSize, f.ChatTemplate, f.Thinking, slots,
                f.VocabSize, f.TrainedContext, f.ContextLength, f.EmbeddingLength, f.Parameters, FileSize));
    }

    /// <summary>
    /// Reads what <paramref name="options"/> would serve of the model at <paramref name="path"/> from its header and
    /// tokenizer, without loading its weights (GgufFormatException, IOException for a file that is not a model).
    /// </summary>
    public static ServableModel Describe(string id, string path, ServerOptions options)
    {
        using var file = GgufFile.Open(path);
        string arch = file.Architecture ?? "unknown";
        int trained = file.TryGetInt64($"{arch}.context_length", out long c) ? (int)Math.Clamp(c, 0, int.MaxValue) : 4096;
        int served = options.ContextLength > 0 ? options.ContextLength : Math.Min(trained, 4096);
        int vocab = file.Metadata.TryGetValue("tokenizer.ggml.tokens", out var tokens) && tokens.Value is GgufArray a ? a.Count : 0;
        string? template = options.ChatTemplate ?? file.GetStringOrNull("tokenizer.chat_template");
        bool thinking;
        try
        {
            thinking = new ChatPromptBuilder(Tokenizer.Create(TokenizerData.FromGguf(file)), template).SupportsThinking;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            thinking = false; // a tokenizer or template Sputnik cannot read: loading will say why
        }
        int dim = file.TryGetInt64($"{arch}.embedding_length", out long d) ? (int)Math.Clamp(d, 0, int.MaxValue) : 0;
        var facts = new ModelFacts(arch, file.Tensors.Sum(t => t.ElementCount), Api.Ollama.OllamaEndpoints.QuantizationLevel(file), served, trained,
            vocab, template != null, thinking, dim);
        return Create(id, file, path, facts, options);
    }

    /// <summary>The entry of a loaded model, from what loading found (the same facts <see cref="Describe"/> reads).</summary>
    public static ServableModel Create(string id, GgufFile file, string path, ModelFacts facts, ServerOptions options)
    {
        var info = Sputnik.Hub.HubCache.Target(path);
        long size = info.Exists ? file.TotalFileSize : 0;
        var modified = info.Exists ? info.LastWriteTimeUtc : DateTime.UtcNow;
        long kv = KvCacheBytes(file, facts.ContextLength, options.KvType, options.KvTypeV ?? options.KvType) * options.Parallel;
        return new ServableModel(id, file.ShardPaths, size, modified, QuickIdentity(info), facts, size + kv);
    }

    /// <summary>
    /// Bytes one sequence's full KV cache takes: per layer and position, the keys and values of every KV head
    /// (deepseek2: its compressed latent and RoPE key, as it caches them).
    /// </summary>
    internal static long KvCacheBytes(GgufFile file, int contextLength, KvCacheType keyType, KvCacheType valueType)
    {
        string arch = file.Architecture ?? "";
        long Key(string name, long fallback) => file.TryGetInt64($"{arch}.{name}", out long v) && v > 0 ? v : fallback;
        long layers = Key("block_count", 0);
        long dim = Key("embedding_length", 0);
        long heads = Key("attention.head_count", 1);
        long rowBytes;
        if (file.TryGetInt64($"{arch}.attention.kv_lora_rank", out long rank) && rank > 0)
            rowBytes = KvRowCodec.Bytes(KvCacheType.F16, (int)(rank + Key("rope.dimension_count", 0)));
        else
        {
            long kvHeads = Key("attention.head_count_kv", heads);
            long keyLength = Key("attention.key_length", dim / Math.Max(1, heads));
            long valueLength = Key("attention.value_length", keyLength);
            rowBytes = Bytes(keyType, kvHeads * keyLength) + Bytes(valueType, kvHeads * valueLength);
        }
        return layers * contextLength * rowBytes;

        static long Bytes(KvCacheType type, long elements) => type switch
        {
            KvCacheType.F32 => elements * 4,
            KvCacheType.F16 => elements * 2,
            _ => KvRowCodec.Bytes(type, KvRowCodec.Block) * ((elements + KvRowCodec.Block - 1) / KvRowCodec.Block),
        };
    }

    /// <summary>
    /// Ollama's digest field, and the system_fingerprint: SHA-256 of the model file's first MiB (header, metadata,
    /// first tensors) and its size (the whole file is not read).
    /// </summary>
    internal static string QuickIdentity(FileInfo info)
    {
        if (!info.Exists) return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(info.FullName)));
        using var f = info.OpenRead();
        var head = new byte[(int)Math.Min(info.Length, 1 << 20)];
        f.ReadExactly(head);
        var hash = System.Security.Cryptography.SHA256.HashData([.. head, .. BitConverter.GetBytes(info.Length)]);
        return Convert.ToHexStringLower(hash);
    }
}
