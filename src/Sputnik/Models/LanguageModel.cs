using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// A loaded architecture: turns tokens at positions into next-token logits using a per-sequence
/// <see cref="InferenceState"/>. Implementations keep the weights in the mapped file.
/// </summary>
public abstract class LanguageModel : IDisposable
{
    protected LanguageModel(GgufFile file, ModelConfig config, WorkerPool pool)
    {
        File = file;
        Config = config;
        Pool = pool;
    }

    public GgufFile File { get; }
    public ModelConfig Config { get; }
    public WorkerPool Pool { get; }

    /// <summary>Creates the KV cache (F16) and scratch buffers for one sequence of up to <paramref name="contextLength"/> tokens.</summary>
    public InferenceState CreateState(int contextLength) => CreateState(contextLength, KvCacheType.F16);

    /// <summary>Creates the KV cache in <paramref name="kvType"/> and scratch buffers for one sequence of up to <paramref name="contextLength"/> tokens.</summary>
    public abstract InferenceState CreateState(int contextLength, KvCacheType kvType);

    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions state.Cache.Length onward and returns the logits after the
    /// last one (a view into the state, valid until the next call).
    /// </summary>
    public abstract ReadOnlySpan<float> Forward(InferenceState state, ReadOnlySpan<int> tokens);

    public virtual long ParameterCount => File.Tensors.Sum(t => t.ElementCount);

    public void Dispose()
    {
        Pool.Dispose();
        File.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Per-sequence mutable state: KV cache plus activation scratch. Not thread-safe; one per sequence.</summary>
public class InferenceState(KvCache cache, int vocab)
{
    public KvCache Cache { get; } = cache;
    public float[] Logits { get; } = new float[vocab];

    /// <summary>Positions already in the cache.</summary>
    public int Position => Cache.Length;

    public int Capacity => Cache.Capacity;

    /// <summary>Forgets positions from <paramref name="length"/> on (prompt reuse keeps a common prefix).</summary>
    public void Truncate(int length) => Cache.Length = Math.Min(Cache.Length, Math.Max(0, length));
}
