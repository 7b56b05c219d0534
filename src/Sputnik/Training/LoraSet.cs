using Sputnik.Models;

namespace Sputnik.Training;

/// <summary>
/// The trainable side of LoRA over a frozen base: which matrix kinds get an adapter, its rank and alpha, and the pairs
/// themselves in one F32 <see cref="ParameterBuffer"/> (so AdamW, clipping and checkpoints are the existing single
/// loops). Pairs are declared while the model is built (<see cref="FrozenBase"/> calls <see cref="Attach"/>); an
/// expert stack gets one pair per expert, stored as llama.cpp's 3-D lora tensors ([In, r, E] and [r, Out, E]).
/// </summary>
internal sealed class LoraSet
{
    /// <summary>Matrix kinds llama.cpp's graph applies adapters to, per architecture. deepseek2's graph applies them
    /// only to attn_output, the FFNs and the experts, so MLA's projections are not offered there.</summary>
    public static IReadOnlyList<string> Targetable(string arch) => arch == DeepSeek2.Name
        ? [TensorNames.AttnOutput, TensorNames.FfnGate, TensorNames.FfnUp, TensorNames.FfnDown,
           TensorNames.FfnGateShexp, TensorNames.FfnUpShexp, TensorNames.FfnDownShexp,
           TensorNames.FfnGateExps, TensorNames.FfnUpExps, TensorNames.FfnDownExps]
        : [TensorNames.AttnQ, TensorNames.AttnK, TensorNames.AttnV, TensorNames.AttnOutput, TensorNames.FfnGate, TensorNames.FfnUp, TensorNames.FfnDown];

    public ParameterBuffer P { get; } = new();
    public int Rank { get; }
    public float Alpha { get; }
    public float Scale => Alpha / Rank;
    public IReadOnlySet<string> Targets { get; }

    /// <summary>One adapted tensor: its base name, the matrices (one, or one per expert) and the A/B slices.</summary>
    public sealed record Entry(string Name, Linear[] Matrices, ParamSlice A, ParamSlice B);

    private readonly List<Entry> _entries = [];
    public IReadOnlyList<Entry> Entries => _entries;

    /// <param name="arch">The base's architecture (which kinds may be targeted).</param>
    /// <param name="rank">r: A is [r, In], B [Out, r].</param>
    /// <param name="alpha">The scale is alpha / r.</param>
    /// <param name="targets">Kinds to adapt (null = all <see cref="Targetable"/> ones).</param>
    public LoraSet(string arch, int rank, float alpha, IEnumerable<string>? targets)
    {
        if (rank < 1) throw new ArgumentException($"--lora-rank must be at least 1 (got {rank})");
        if (!(alpha > 0) || float.IsInfinity(alpha)) throw new ArgumentException($"--lora-alpha must be a positive number (got {alpha})");
        var allowed = Targetable(arch);
        var t = (targets ?? allowed).ToHashSet(StringComparer.Ordinal);
        foreach (var k in t)
            if (!allowed.Contains(k))
                throw new ArgumentException($"--lora-targets: '{k}' is not a matrix LoRA adapts in {arch} (one of {string.Join(", ", allowed)})");
        if (t.Count == 0) throw new ArgumentException("--lora-targets names no matrix");
        Rank = rank; Alpha = alpha; Targets = t;
    }

    /// <summary>The kind of "blk.N.kind.weight" ("attn_q"), or null for a model-wide tensor.</summary>
    public static string? KindOf(string tensorName)
    {
        if (TensorNames.LayerOf(tensorName) < 0 || !tensorName.EndsWith(".weight", StringComparison.Ordinal)) return null;
        string mid = tensorName[..^".weight".Length];
        return mid[(mid.IndexOf('.', TensorNames.BlockPrefix.Length) + 1)..];
    }

    /// <summary>Declares a pair for <paramref name="name"/> when its kind is targeted; refuses a rank above the matrix's.</summary>
    public void Attach(string name, Linear[] matrices)
    {
        if (KindOf(name) is not { } kind || !Targets.Contains(kind)) return;
        int cin = matrices[0].In, cout = matrices[0].Out, e = matrices.Length;
        if (Rank > Math.Min(cin, cout))
            throw new ArgumentException($"--lora-rank {Rank} is larger than {name} allows ({cout}×{cin}: rank at most {Math.Min(cin, cout)})");
        var a = e == 1 ? P.Add(name + ".lora_a", Rank, cin) : P.Add(name + ".lora_a", e, Rank, cin);
        var b = e == 1 ? P.Add(name + ".lora_b", cout, Rank) : P.Add(name + ".lora_b", e, cout, Rank);
        for (int i = 0; i < e; i++)
        {
            var ai = e == 1 ? a : new ParamSlice($"{a.Name}[{i}]", a.Offset + i * Rank * cin, [Rank, cin]);
            var bi = e == 1 ? b : new ParamSlice($"{b.Name}[{i}]", b.Offset + i * cout * Rank, [cout, Rank]);
            matrices[i].Lora = new LoraDelta(P, ai, bi, Rank, Scale);
        }
        _entries.Add(new Entry(name, matrices, a, b));
    }

    /// <summary>
    /// Allocates the pairs: A ~ U(−1/√In, 1/√In) (PEFT's Kaiming-uniform default), B = 0, so training starts exactly
    /// at the base model.
    /// </summary>
    public void Allocate(int seed)
    {
        if (_entries.Count == 0) throw new ArgumentException("the base model has no matrix of the targeted kinds");
        P.Allocate();
        var rng = new Random(seed);
        foreach (var en in _entries)
        {
            float bound = 1f / MathF.Sqrt(en.Matrices[0].In);
            var w = P.W(en.A);
            for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1) * bound;
        }
    }

    /// <summary>Sets the scale every pair applies (0 turns the adapter off; 1 = alpha / rank as trained).</summary>
    public void SetScale(float adapterScale)
    {
        foreach (var en in _entries)
            foreach (var m in en.Matrices) m.Lora!.Scale = adapterScale * Scale;
    }

    /// <summary>
    /// Writes the adapter with <see cref="LoraAdapter.Write"/> (llama.cpp's layout: general.type adapter, adapter.type
    /// lora, adapter.lora.alpha, "NAME.lora_a" [In, r] / "NAME.lora_b" [r, Out], 3-D for expert stacks).
    /// </summary>
    public void Write(string path, string arch)
    {
        var pairs = _entries.Select(en => new LoraPair(en.Name, en.Matrices[0].In, en.Matrices[0].Out, Rank,
            P.W(en.A).ToArray(), P.W(en.B).ToArray(), en.Matrices.Length)).ToList();
        string tmp = path + ".tmp";
        LoraAdapter.Write(tmp, arch, Alpha, pairs);
        File.Move(tmp, path, overwrite: true);
    }

    private static long[] GgmlDims(ParamSlice s) => s.Shape.Reverse().Select(d => (long)d).ToArray();

    /// <summary>W + scale·B·A for one adapted matrix (expert <paramref name="expert"/> of a stack), row-major [Out, In].</summary>
    public float[] Merged(Entry en, int expert, float adapterScale = 1f)
    {
        var m = en.Matrices[expert];
        var w = m.ToFloats();
        var pair = m.Lora!;
        var a = P.W(pair.A); var b = P.W(pair.B);
        float s = adapterScale * Scale;
        for (int o = 0; o < m.Out; o++)
            for (int r = 0; r < Rank; r++)
            {
                float bo = s * b[o * Rank + r];
                if (bo == 0) continue;
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(a.Slice(r * m.In, m.In), bo, w.AsSpan(o * m.In, m.In), w.AsSpan(o * m.In, m.In));
            }
        return w;
    }
}
