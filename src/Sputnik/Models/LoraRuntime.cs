using System.Globalization;
using System.Numerics.Tensors;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// One attached adapter's factors for one weight matrix, laid out for the low-rank path y += s·Bᵀ-rows(A·x):
/// <see cref="A"/> is Rank rows of the matrix's inputs, <see cref="BT"/> Rank rows of its outputs (B transposed, so
/// each of the rank terms is one contiguous multiply-add over the output row).
/// </summary>
internal sealed class LoraFactors(float[] a, float[] bt, int rank, float unitScale)
{
    public float[] A { get; } = a;
    public float[] BT { get; } = bt;
    public int Rank { get; } = rank;
    /// <summary>alpha/rank, or 1 when the adapter states no alpha: the factor of a user scale of 1.</summary>
    public float UnitScale { get; } = unitScale;
}

/// <summary>
/// The adapters one sequence runs with: (attached adapter id, scale) pairs sorted by id, scale-0 entries dropped,
/// so a set of zero scales is the base model exactly and shares its prompt-cache entries. Immutable.
/// </summary>
internal sealed class LoraSet
{
    public static readonly LoraSet None = new([]);

    private LoraSet((int Id, float Scale)[] entries)
    {
        Entries = entries;
        Key = string.Join(';', entries.Select(e => e.Id.ToString(CultureInfo.InvariantCulture) + "=" + e.Scale.ToString("R", CultureInfo.InvariantCulture)));
    }

    public (int Id, float Scale)[] Entries { get; }

    /// <summary>"" for none, else "id=scale;…": what prompt-cache entries are keyed by (a prefix computed under other adapters is another prefix).</summary>
    public string Key { get; }

    public bool IsEmpty => Entries.Length == 0;

    /// <summary>The set of the given scales; a later entry for the same id replaces an earlier one.</summary>
    public static LoraSet Of(IEnumerable<(int Id, float Scale)> scales)
    {
        var byId = new SortedDictionary<int, float>();
        foreach (var (id, scale) in scales)
        {
            if (id < 0) throw new ArgumentException($"LoRA adapter id {id} is negative");
            if (!float.IsFinite(scale)) throw new ArgumentException($"LoRA scale of adapter {id} must be a finite number");
            byId[id] = scale;
        }
        var entries = byId.Where(kv => kv.Value != 0).Select(kv => (kv.Key, kv.Value)).ToArray();
        return entries.Length == 0 ? None : new LoraSet(entries);
    }

    public override string ToString() => Key;
}

/// <summary>Which sequence's adapters apply to each row of a batch: row i belongs to Seqs[i] when set, else to Self.</summary>
internal readonly struct LoraRows(InferenceState? self, IReadOnlyList<InferenceState>? seqs)
{
    public LoraSet Of(int row) => seqs != null ? seqs[row].Adapters : self?.Adapters ?? LoraSet.None;

    /// <summary>Whether any row has an adapter (else the low-rank path is skipped and the output is the base model's, bit for bit).</summary>
    public bool Any
    {
        get
        {
            if (seqs == null) return self is { Adapters.IsEmpty: false };
            for (int i = 0; i < seqs.Count; i++)
                if (!seqs[i].Adapters.IsEmpty) return true;
            return false;
        }
    }
}

/// <summary>
/// The low-rank path of attached adapters: after the base product y = W·x of a batch, each row adds
/// Σ over its sequence's adapters scale·alpha/rank·B(A·x) — rank dot products and rank multiply-adds per adapter, never
/// a merged weight. Rows are independent (a row's result does not depend on the batch it shares), split over the pool
/// when the batch is large. The delegate and per-thread scratch are created once: a call allocates nothing.
/// </summary>
internal sealed class LoraJob
{
    private readonly WorkerPool _pool;
    private readonly Action<int, int> _body;
    // The current call's operands.
    private LoraFactors?[] _factors = [];
    private LoraRows _owners;
    private float[] _x = [], _y = [];
    private int _xOffset, _xStride, _yOffset, _yStride, _cols, _rows, _ownerBase;
    private int[]? _ownerOf;

    [ThreadStatic] private static float[]? t_projected;

    public LoraJob(WorkerPool pool)
    {
        _pool = pool;
        _body = AddRows;
    }

    /// <summary>
    /// For rows i in [0, n): y[yOffset + i·yStride ..][..w.Rows] += the adapters' deltas of x[xOffset + i·xStride ..][..w.Cols],
    /// with row i's adapters those of batch row ownerOf[ownerBase + i] (gathered expert rows), or of row i itself.
    /// Nothing happens when w has no adapter or no row selects one.
    /// </summary>
    public void Add(WeightMatrix w, LoraRows owners, float[] x, int xOffset, int xStride, float[] y, int yOffset, int yStride, int n,
        int[]? ownerOf = null, int ownerBase = 0)
    {
        if (w.Lora is not { } factors || n <= 0 || !owners.Any) return;
        (_factors, _owners, _x, _xOffset, _xStride, _y, _yOffset, _yStride) = (factors, owners, x, xOffset, xStride, y, yOffset, yStride);
        (_cols, _rows, _ownerOf, _ownerBase) = (w.Cols, w.Rows, ownerOf, ownerBase);
        int maxRank = 1;
        foreach (var f in factors) if (f != null) maxRank = Math.Max(maxRank, f.Rank);
        long workPerRow = (long)maxRank * (w.Cols + w.Rows);
        if (n == 1 || n * workPerRow < 1 << 16) AddRows(0, n);
        else _pool.For(n, _body, minPerThread: (int)Math.Max(1, (1 << 16) / workPerRow));
        _x = _y = [];
        _factors = [];
    }

    private void AddRows(int i0, int i1)
    {
        for (int i = i0; i < i1; i++)
        {
            var set = _owners.Of(_ownerOf != null ? _ownerOf[_ownerBase + i] : i);
            if (set.IsEmpty) continue;
            var x = new ReadOnlySpan<float>(_x, _xOffset + i * _xStride, _cols);
            var y = new Span<float>(_y, _yOffset + i * _yStride, _rows);
            foreach (var (id, scale) in set.Entries)
                if (id < _factors.Length && _factors[id] is { } f) AddDelta(f, scale, x, y);
        }
    }

    /// <summary>y += scale·unit·Bᵀ(A·x) for one row.</summary>
    internal static void AddDelta(LoraFactors f, float scale, ReadOnlySpan<float> x, Span<float> y)
    {
        int cols = x.Length, rows = y.Length;
        var projected = t_projected is { } p && p.Length >= f.Rank ? p : t_projected = new float[Math.Max(f.Rank, 64)];
        float s = scale * f.UnitScale;
        for (int k = 0; k < f.Rank; k++) projected[k] = TensorPrimitives.Dot(new ReadOnlySpan<float>(f.A, k * cols, cols), x);
        for (int k = 0; k < f.Rank; k++) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(f.BT, k * rows, rows), s * projected[k], y, y);
    }
}

/// <summary>A weight matrix an adapter can target: the base tensor it comes from, which expert of a 3-D stack, which rows of a fused tensor.</summary>
internal sealed record AdaptableWeight(WeightMatrix Matrix, string BaseName, int Expert, int RowStart);

/// <summary>Attaching adapters to a model's matrices (<see cref="LanguageModel.AttachAdapter"/>).</summary>
internal static class LoraAttach
{
    /// <summary>
    /// The factors of <paramref name="pair"/> for one matrix: expert <paramref name="w"/>.Expert's block of an expert stack, and
    /// for a part of a fused tensor the B rows of that part (A is the whole input projection either way).
    /// </summary>
    public static LoraFactors Factors(LoraAdapter adapter, LoraPair pair, AdaptableWeight w)
    {
        int expert = Math.Max(0, w.Expert), rank = pair.Rank, cols = w.Matrix.Cols, rows = w.Matrix.Rows;
        if (cols != pair.Inputs || w.RowStart + rows > pair.Outputs || (w.Expert >= 0 ? w.Expert >= pair.Experts : pair.Experts != 1))
            throw new InvalidDataException($"LoRA adapter {Path.GetFileName(adapter.Path)}: '{pair.BaseName}' does not fit the model's matrix {w.Matrix.Name} ({rows}×{cols})");
        var a = pair.AOf(expert).ToArray();
        var b = pair.BOf(expert);
        var bt = new float[rank * rows];
        for (int k = 0; k < rank; k++)
            for (int r = 0; r < rows; r++) bt[k * rows + r] = b[(w.RowStart + r) * rank + k];
        return new LoraFactors(a, bt, rank, adapter.EffectiveScale(pair, 1f));
    }
}
