using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Sputnik.Gguf;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// A read-only weight matrix: Rows rows of Cols weights of one ggml type, living in the memory-mapped GGUF file,
/// or, for Q4_K, Q6_K, Q8_0 and Q5_0 on AVX-512 machines, re-laid 16 rows at a time into memory of its own (<see cref="Interleaving"/>;
/// F16 rows on any SIMD machine are re-laid scaled by 2^10 instead, <see cref="ScaledHalves"/>;
/// same size, read with positioned reads so the mapping's pages for it are never touched and RSS does not double),
/// or mapped from the file of re-laid weights an earlier load left (<see cref="RelaidCache"/>), or (MoE routed experts)
/// re-laid at its first use (<see cref="EnsureRelaid"/>).
/// y = W·x computes one dot product per row, in parallel over row ranges.
/// </summary>
internal sealed unsafe partial class WeightMatrix
{
    // Both change once, from the mapping to the re-laid copy, when a matrix made with relayOnFirstUse is first used.
    private byte* _data;
    private byte[]? _interleaved; // pinned; _data points into it, 64-byte aligned (null when mapped from the cache)
    // Until then: where to read the rows from; set back to null (under the lock) once they are re-laid.
    private GgufFile? _relayFile;
    private GgufTensorInfo? _relayInfo;
    private readonly Lock? _relayLock;
    private volatile bool _relayPending;

    public string Name { get; }
    public GgmlType Type { get; }
    public int Rows { get; }
    public int Cols { get; }
    public int RowBytes { get; }

    /// <summary>
    /// Factors of the attached LoRA adapters that target this matrix, indexed by adapter id (null where one does not):
    /// the products add their low-rank deltas after the base product (<see cref="LoraJob"/>). Null with no adapter.
    /// </summary>
    public LoraFactors?[]? Lora { get; set; }

    /// <param name="file">The model file.</param>
    /// <param name="info">The tensor (or a row range of one).</param>
    /// <param name="mayInterleave">False keeps the rows in the mapping whatever the type (per-head slices).</param>
    /// <param name="relayOnFirstUse">With <paramref name="mayInterleave"/>: re-lay the rows at the first product or row
    /// read instead of at load (MoE routed experts: re-laying all of them at load cost V2-Lite 16 s and 7 GB up front,
    /// while a token uses a few; this way load time and memory follow the experts actually used).</param>
    public WeightMatrix(GgufFile file, GgufTensorInfo info, bool mayInterleave = true, bool relayOnFirstUse = false)
    {
        if (info.Dims.Length > 2 && info.Dims[2..].Any(d => d != 1))
            throw new GgufFormatException($"tensor '{info.Name}' has shape [{string.Join(", ", info.Dims)}], expected a matrix");
        Name = info.Name;
        Type = info.Type;
        Cols = checked((int)info.Columns);
        Rows = checked((int)info.Rows);
        RowBytes = checked((int)GgmlTypeInfo.RowBytes(Type, Cols));
        if (mayInterleave && file.RepackWeights && MayRelay(Type, Rows, Cols) && (long)Rows * RowBytes + 64 <= Array.MaxLength)
        {
            if (relayOnFirstUse)
            {
                _data = file.DataPointer(info);
                (_relayFile, _relayInfo, _relayLock, _relayPending) = (file, info, new Lock(), true);
                return;
            }
            // A row range of a tensor (split projections) has the tensor's name: the data offset tells them apart.
            string key = $"{info.Name}@{info.Shard}:{file.FileOffset(info)}";
            var cache = RelaidCache.Of(file);
            long bytes = (long)Rows * RowBytes;
            if (cache.TryGet(key, Type, Rows, Cols, bytes, out _data))
            {
                _relaid = true;
                return;
            }
            _interleaved = ReadRelaid(file, info, Rows, Cols, out _data);
            if (_interleaved != null)
            {
                _relaid = true;
                cache.Add(key, Type, Rows, Cols, _interleaved, _data, bytes);
                return;
            }
        }
        _data = file.DataPointer(info);
    }

    // Re-laid at load or first use, or mapped from the cache: F16 rows scaled, every other type interleaved.
    private bool _relaid;

    /// <summary>True when the rows are held in a 16-row interleaved layout (re-laid at load or first use, or mapped from <see cref="RelaidCache"/>).</summary>
    public bool IsInterleaved => _relaid && Type != GgmlType.F16;

    /// <summary>True when F16 rows are held scaled by 2^10 (<see cref="ScaledHalves"/>; re-laid like the interleaved ones).</summary>
    public bool IsScaledHalves => _relaid && Type == GgmlType.F16;

    /// <summary>True while a matrix made with relayOnFirstUse still reads its rows from the mapping.</summary>
    public bool RelayPending => _relayPending;

    /// <summary>
    /// Re-lays the rows of a matrix made with relayOnFirstUse if that has not happened yet (positioned reads, so the
    /// mapping's pages for it are not touched). Every product and row read calls it first; callers that use many
    /// matrices at once (<see cref="ExpertBatch"/>) call it before handing rows to several threads, so those threads
    /// do not queue on the lock. Safe from any thread: the first re-lays, the others wait for it.
    /// </summary>
    public void EnsureRelaid()
    {
        if (!_relayPending) return;
        lock (_relayLock!)
        {
            if (!_relayPending) return;
            var relaid = ReadRelaid(_relayFile!, _relayInfo!, Rows, Cols, out byte* data, RelayArena.Of(_relayFile!));
            if (relaid != null)
            {
                _interleaved = relaid;
                _data = data;
                _relaid = true;
            }
            (_relayFile, _relayInfo) = (null, null);
            _relayPending = false; // volatile: a thread that reads false sees the new _data and layout
        }
    }

    /// <summary>True when the re-laid rows are mapped from the cache file rather than re-laid by this load.</summary>
    public bool IsMapped => _relaid && _interleaved == null;

    /// <summary>Decodes row r into float (embedding lookups, norms, biases).</summary>
    public void GetRow(int r, Span<float> dst)
    {
        if ((uint)r >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(r), $"row {r} of '{Name}' ({Rows} rows)");
        if (_relayPending) EnsureRelaid();
        if (IsInterleaved)
        {
            if (t_rowBytes == null || t_rowBytes.Length < RowBytes) t_rowBytes = new byte[RowBytes];
            int groupBytes = Interleaving.Rows * RowBytes;
            var group = new ReadOnlySpan<byte>(_data + (long)(r / Interleaving.Rows) * groupBytes, groupBytes);
            Interleaving.ExtractRow(Type, group, r % Interleaving.Rows, t_rowBytes, Cols);
            RowFormats.Decode(Type, t_rowBytes.AsSpan(0, RowBytes), dst[..Cols]);
            return;
        }
        if (IsScaledHalves)
        {
            fixed (float* d = dst[..Cols])
                ScaledHalves.ToWeights((ushort*)(_data + (long)r * RowBytes), d, Cols);
            return;
        }
        RowFormats.Decode(Type, new ReadOnlySpan<byte>(_data + (long)r * RowBytes, RowBytes), dst[..Cols]);
    }

    [ThreadStatic] private static byte[]? t_rowBytes;

    public float[] ToFloatVector()
    {
        var v = new float[(long)Rows * Cols];
        for (int r = 0; r < Rows; r++) GetRow(r, v.AsSpan(r * Cols, Cols));
        return v;
    }

    /// <summary>True when a direct integer/float kernel exists; otherwise rows are decoded to float first.</summary>
    public bool HasKernel => MatVec.IsSupported(Type);

    /// <summary>Bytes of activation scratch <see cref="PrepareInput"/> needs.</summary>
    public int InputBytes => HasKernel ? MatVec.ScratchBytes(Type, Cols) : Cols * sizeof(float);

    /// <summary>Whether <see cref="PrepareInput"/> gives this matrix and <paramref name="other"/> the same bytes for the same x.</summary>
    public bool ReadsInputAs(WeightMatrix other) => other.Type == Type && other.Cols == Cols; // HasKernel follows from Type

    /// <summary>Converts x once per product into the format the kernel reads (Q8_0/Q8_K blocks or floats).</summary>
    public void PrepareInput(ReadOnlySpan<float> x, Span<byte> input)
    {
        if (HasKernel) MatVec.QuantizeActivation(Type, x[..Cols], input);
        else MemoryMarshal.AsBytes(x[..Cols]).CopyTo(input);
    }

    /// <summary>Converts tokens [t0, t1) of the row-major batch x (Cols floats per token) into the kernel's format, <see cref="InputBytes"/> per token.</summary>
    public void PrepareInputs(ReadOnlySpan<float> x, Span<byte> input, int t0, int t1)
    {
        for (int t = t0; t < t1; t++)
            PrepareInput(x.Slice(t * Cols, Cols), input.Slice(t * InputBytes, InputBytes));
    }

    /// <summary>y[t * Rows + r] = dot(W[r], x_t) for rows [r0, r1) and tokens [0, tokens), x prepared by <see cref="PrepareInputs"/>.</summary>
    public void MatMulRows(ReadOnlySpan<byte> input, int tokens, Span<float> y, int r0, int r1)
    {
        if (r1 <= r0) return;
        if (_relayPending) EnsureRelaid();
        if (IsInterleaved)
        {
            InterleavedRows(input, tokens, y, r0, r1);
            return;
        }
        if (tokens == 1)
        {
            MatVecRows(input, y, r0, r1); // decode: the lean matrix-vector path
            return;
        }
        if (IsScaledHalves)
        {
            MatMul.ComputeRows(Type, new ReadOnlySpan<byte>(_data, checked(r1 * RowBytes)), Cols, input, tokens, y, Rows, r0, r1, MatVec.DefaultPath, scaledHalves: true);
            return;
        }
        if (HasKernel)
        {
            var weights = new ReadOnlySpan<byte>(_data + (long)r0 * RowBytes, checked((r1 - r0) * RowBytes));
            // Shifted so the kernel sees rows [0, r1 - r0) while y keeps absolute row indices.
            MatMul.ComputeRows(Type, weights, Cols, input, tokens, y[r0..], Rows, 0, r1 - r0);
            return;
        }
        if (t_rowScratch == null || t_rowScratch.Length < Cols) t_rowScratch = new float[Cols];
        var scratch = t_rowScratch.AsSpan(0, Cols);
        var xs = MemoryMarshal.Cast<byte, float>(input);
        for (int r = r0; r < r1; r++)
        {
            RowFormats.Decode(Type, new ReadOnlySpan<byte>(_data + (long)r * RowBytes, RowBytes), scratch);
            for (int t = 0; t < tokens; t++) y[t * Rows + r] = TensorPrimitives.Dot(scratch, xs.Slice(t * Cols, Cols));
        }
    }

    // One decoded row per thread for types without a kernel; allocated once per thread, not per call.
    [ThreadStatic] private static float[]? t_rowScratch;

    /// <summary>y[r] = dot(W[r], x) for rows [r0, r1), x given as prepared by <see cref="PrepareInput"/>.</summary>
    public void MatVecRows(ReadOnlySpan<byte> input, Span<float> y, int r0, int r1)
    {
        if (r1 <= r0) return;
        if (_relayPending) EnsureRelaid();
        if (IsInterleaved)
        {
            InterleavedRows(input, 1, y, r0, r1);
            return;
        }
        if (IsScaledHalves)
        {
            if (input.Length < Cols * sizeof(float) || y.Length < r1) throw new ArgumentException($"'{Name}': rows [{r0}, {r1}) need {Cols * sizeof(float)} input bytes and {r1} outputs");
            fixed (byte* a = input)
            fixed (float* py = y)
                HalfWeights.ScaledRows(_data, Cols, (float*)a, py, r0, r1, MatVec.DefaultPath);
            return;
        }
        var weights = new ReadOnlySpan<byte>(_data + (long)r0 * RowBytes, checked((r1 - r0) * RowBytes));
        if (HasKernel)
        {
            MatVec.ComputeRows(Type, weights, Cols, input, y[r0..r1], 0, r1 - r0);
            return;
        }
        var x = MemoryMarshal.Cast<byte, float>(input)[..Cols];
        if (t_rowScratch == null || t_rowScratch.Length < Cols) t_rowScratch = new float[Cols];
        var scratch = t_rowScratch.AsSpan(0, Cols);
        for (int r = r0; r < r1; r++)
        {
            RowFormats.Decode(Type, new ReadOnlySpan<byte>(_data + (long)r * RowBytes, RowBytes), scratch);
            y[r] = TensorPrimitives.Dot(scratch, x);
        }
    }
}

/// <summary>Row decoding dispatch for weight rows: float formats inline, quantized formats via the Dequant reference.</summary>
internal static class RowFormats
{
    public static void Decode(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.Cast<byte, float>(src).CopyTo(dst);
                break;
            case GgmlType.F16:
                FloatConvert.HalfToFloat(src, dst);
                break;
            default:
                Dequant.Row(type, src, dst);
                break;
        }
    }
}
