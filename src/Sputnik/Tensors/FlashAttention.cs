using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Sputnik.Models;

namespace Sputnik.Tensors;

/// <summary>
/// One KV head's keys or values as a cache stores them: <see cref="Width"/> values of <see cref="Type"/> starting
/// <see cref="RowOffset"/> bytes into each row of <see cref="Rows"/>, position t at byte t·<see cref="RowStride"/>.
/// </summary>
internal readonly ref struct KvHead(ReadOnlySpan<byte> rows, int rowStride, int rowOffset, int width, KvCacheType type)
{
    public readonly ReadOnlySpan<byte> Rows = rows;
    public readonly int RowStride = rowStride, RowOffset = rowOffset, Width = width;
    public readonly KvCacheType Type = type;

    /// <summary>Positions the rows hold.</summary>
    public int Positions => RowStride <= 0 || Rows.Length < RowOffset + KvRowCodec.Bytes(Type, Width) ? 0
        : (Rows.Length - RowOffset - KvRowCodec.Bytes(Type, Width)) / RowStride + 1;

    /// <summary>True when <paramref name="other"/> starts at the same stored values, so its decoded rows serve this head too (MLA: values are a prefix of the key rows).</summary>
    public bool SharesRowsWith(in KvHead other) =>
        Type == other.Type && RowStride == other.RowStride && RowOffset == other.RowOffset && Width <= other.Width &&
        Unsafe.AreSame(ref MemoryMarshal.GetReference(Rows), ref MemoryMarshal.GetReference(other.Rows));
}

/// <summary>
/// Causal attention of a block of query rows over one KV head, flash-attention style: keys and values are read a
/// tile of <see cref="Tile"/> positions at a time (decoded from the cache format into an L1-sized buffer once for
/// all query rows of the block: every query head of a GQA group and every token of a prefill block), and each row
/// keeps a running maximum, a running sum and an unnormalized output, rescaled when the maximum grows (online
/// softmax), so nothing grows with the context. Token i of the block sits at position pos0 + i and sees positions
/// max(0, pos0 + i − window + 1) … pos0 + i (window 0: from 0).
/// Tiles start at multiples of <see cref="Tile"/> whatever the block, so a row's result depends only on its own
/// position and the cache: a token attended alone and the same token inside a prefill block or a multi-sequence
/// step give the same bits.
/// </summary>
internal static class FlashAttention
{
    public const int Tile = 64;

    /// <summary>Widest vector path this CPU runs (the JIT folds it to a constant).</summary>
    public static int BestWidth =>
        Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : Vector128.IsHardwareAccelerated ? 128 : 0;

    // Per-thread tile buffers, grown when a wider head or larger block shows up, never per call.
    private sealed class Scratch
    {
        public float[] Keys = [], Values = [], Scores = new float[Tile], Max = [], Sum = [];

        public void Ensure(int rows, int keyWidth, int valueWidth)
        {
            if (Keys.Length < Tile * keyWidth) Keys = new float[Tile * keyWidth];
            if (Values.Length < Tile * valueWidth) Values = new float[Tile * valueWidth];
            if (Max.Length < rows)
            {
                Max = new float[rows];
                Sum = new float[rows];
            }
        }
    }

    [ThreadStatic] private static Scratch? t_scratch;

    /// <summary>First position token at <paramref name="pos"/> sees.</summary>
    public static int WindowStart(int pos, int window) => window > 0 ? Math.Max(0, pos - window + 1) : 0;

    /// <summary>
    /// Rows (token i, head j) for i &lt; tokens, j &lt; group: query at q[i·qStride + j·keys.Width], output (values.Width
    /// floats, overwritten) at output[i·oStride + j·values.Width]; scores are q·k·<paramref name="scale"/>.
    /// </summary>
    public static void Attend(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, Span<float> output, int oStride,
        int tokens, int group, int pos0, int window, float scale) =>
        Attend(keys, values, q, qStride, output, oStride, tokens, group, pos0, window, scale, BestWidth);

    /// <summary>The kernel with an explicit vector width (512, 256, 128, or 0 for scalar), so tests run every path.</summary>
    internal static void Attend(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, Span<float> output, int oStride,
        int tokens, int group, int pos0, int window, float scale, int width)
    {
        int kw = keys.Width, vw = values.Width, rows = tokens * group;
        Check(keys, values, q, qStride, output, oStride, tokens, group, pos0, window);
        var sc = t_scratch ??= new Scratch();
        sc.Ensure(rows, kw, vw);
        var max = sc.Max.AsSpan(0, rows);
        var sum = sc.Sum.AsSpan(0, rows);
        max.Fill(float.NegativeInfinity);
        sum.Clear();
        for (int i = 0; i < tokens; i++) output.Slice(i * oStride, group * vw).Clear();
        bool shared = values.SharesRowsWith(keys);

        int last = pos0 + tokens - 1, lo0 = WindowStart(pos0, window);
        for (int t0 = lo0 / Tile * Tile; t0 <= last; t0 += Tile)
        {
            int end = Math.Min(t0 + Tile, last + 1), first = Math.Max(t0, lo0);
            var k = DecodeTile(keys, first, end - first, sc.Keys, width, out int ks);
            int vs = ks;
            var v = shared ? k : DecodeTile(values, first, end - first, sc.Values, width, out vs);
            for (int i = 0; i < tokens; i++)
            {
                int pos = pos0 + i, a = Math.Max(WindowStart(pos, window), first), b = Math.Min(pos + 1, end);
                if (a >= b) continue; // outside this token's window
                int n = b - a;
                ref float kRow = ref Unsafe.Add(ref MemoryMarshal.GetReference(k), (a - first) * ks);
                ref float vRow = ref Unsafe.Add(ref MemoryMarshal.GetReference(v), (a - first) * vs);
                for (int j = 0; j < group; j++)
                {
                    int r = i * group + j;
                    ref float qr = ref Unsafe.AsRef(in q[i * qStride + j * kw]);
                    var s = sc.Scores.AsSpan(0, n);
                    float tileMax = float.NegativeInfinity;
                    for (int t = 0; t < n; t++)
                    {
                        float x = Dot(ref qr, ref Unsafe.Add(ref kRow, t * ks), kw, width) * scale;
                        s[t] = x;
                        tileMax = Math.Max(tileMax, x);
                    }
                    float m = Math.Max(max[r], tileMax);
                    float alpha = MathF.Exp(max[r] - m); // 0 on the row's first tile (−∞)
                    float tileSum = ExpShifted(s, m, width);
                    sum[r] = sum[r] * alpha + tileSum;
                    max[r] = m;
                    Accumulate(ref output[i * oStride + j * vw], alpha, s, ref vRow, vs, vw, width);
                }
            }
        }

        for (int i = 0; i < tokens; i++)
            for (int j = 0; j < group; j++)
            {
                var o = output.Slice(i * oStride + j * vw, vw);
                float inv = 1f / sum[i * group + j];
                for (int c = 0; c < vw; c++) o[c] *= inv;
            }
    }

    private static void Check(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, Span<float> output, int oStride,
        int tokens, int group, int pos0, int window)
    {
        if (tokens < 1 || group < 1 || pos0 < 0 || window < 0)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"{tokens} tokens × {group} heads at position {pos0}, window {window}");
        if ((tokens - 1) * (long)qStride + group * keys.Width > q.Length || (tokens - 1) * (long)oStride + group * values.Width > output.Length)
            throw new ArgumentException("query or output rows run past their buffers");
        int needed = pos0 + tokens;
        if (keys.Positions < needed || values.Positions < needed)
            throw new ArgumentOutOfRangeException(nameof(pos0), $"the cache holds {Math.Min(keys.Positions, values.Positions)} positions, attention needs {needed}");
        if (KvRowCodec.IsBlockFormat(keys.Type) && keys.Width % KvRowCodec.Block != 0 || KvRowCodec.IsBlockFormat(values.Type) && values.Width % KvRowCodec.Block != 0)
            throw new ArgumentException($"a block-quantized head must be a multiple of {KvRowCodec.Block} values");
    }

    /// <summary>Positions [first, first + count) of a head as floats: a view of an F32 cache, otherwise decoded into buffer.</summary>
    private static ReadOnlySpan<float> DecodeTile(in KvHead h, int first, int count, float[] buffer, int width, out int stride)
    {
        int bytes = KvRowCodec.Bytes(h.Type, h.Width);
        if (h.Type == KvCacheType.F32 && h.RowStride % 4 == 0 && h.RowOffset % 4 == 0)
        {
            stride = h.RowStride / 4;
            var all = MemoryMarshal.Cast<byte, float>(h.Rows);
            return all.Slice(first * stride + h.RowOffset / 4, (count - 1) * stride + h.Width);
        }
        stride = h.Width;
        for (int t = 0; t < count; t++)
            KvRowCodec.Decode(h.Type, h.Rows.Slice((first + t) * h.RowStride + h.RowOffset, bytes), buffer.AsSpan(t * h.Width, h.Width), width);
        return buffer.AsSpan(0, count * h.Width);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(ref float a, ref float b, int n, int width)
    {
        int i = 0;
        float s = 0;
        if (width == 512 && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16)
                acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref a, (nuint)i), Vector512.LoadUnsafe(ref b, (nuint)i), acc);
            s = Vector512.Sum(acc);
        }
        else if (width >= 256 && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8)
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a, (nuint)i), Vector256.LoadUnsafe(ref b, (nuint)i), acc);
            s = Vector256.Sum(acc);
        }
        else if (width >= 128 && n >= 4)
        {
            var acc = Vector128<float>.Zero;
            for (; i + 4 <= n; i += 4)
                acc += Vector128.LoadUnsafe(ref a, (nuint)i) * Vector128.LoadUnsafe(ref b, (nuint)i);
            s = Vector128.Sum(acc);
        }
        for (; i < n; i++) s += Unsafe.Add(ref a, i) * Unsafe.Add(ref b, i);
        return s;
    }

    /// <summary>s[t] = exp(s[t] − m); returns the sum.</summary>
    private static float ExpShifted(Span<float> s, float m, int width)
    {
        if (width == 0)
        {
            float total = 0;
            for (int t = 0; t < s.Length; t++) total += s[t] = MathF.Exp(s[t] - m);
            return total;
        }
        TensorPrimitives.Subtract(s, m, s);
        TensorPrimitives.Exp(s, s);
        return TensorPrimitives.Sum(s);
    }

    /// <summary>o = o·alpha + Σ_t p[t]·v[t·vStride ..]: the row's output stays in registers one vector column at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate(ref float o, float alpha, ReadOnlySpan<float> p, ref float v, int vStride, int n, int width)
    {
        int c = 0, count = p.Length;
        ref float p0 = ref MemoryMarshal.GetReference(p);
        if (width == 512)
            for (; c + 16 <= n; c += 16)
            {
                var acc = Vector512.LoadUnsafe(ref o, (nuint)c) * alpha;
                for (int t = 0; t < count; t++)
                    acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref v, (nuint)(t * vStride + c)), Vector512.Create(Unsafe.Add(ref p0, t)), acc);
                acc.StoreUnsafe(ref o, (nuint)c);
            }
        if (width >= 256)
            for (; c + 8 <= n; c += 8)
            {
                var acc = Vector256.LoadUnsafe(ref o, (nuint)c) * alpha;
                for (int t = 0; t < count; t++)
                    acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v, (nuint)(t * vStride + c)), Vector256.Create(Unsafe.Add(ref p0, t)), acc);
                acc.StoreUnsafe(ref o, (nuint)c);
            }
        if (width >= 128)
            for (; c + 4 <= n; c += 4)
            {
                var acc = Vector128.LoadUnsafe(ref o, (nuint)c) * alpha;
                for (int t = 0; t < count; t++)
                    acc += Vector128.LoadUnsafe(ref v, (nuint)(t * vStride + c)) * Unsafe.Add(ref p0, t);
                acc.StoreUnsafe(ref o, (nuint)c);
            }
        for (; c < n; c++)
        {
            float acc = Unsafe.Add(ref o, c) * alpha;
            for (int t = 0; t < count; t++) acc += Unsafe.Add(ref v, t * vStride + c) * Unsafe.Add(ref p0, t);
            Unsafe.Add(ref o, c) = acc;
        }
    }

    /// <summary>
    /// The definition, for tests: every row's scores over its whole window in double precision, a two-pass softmax,
    /// and each key and value decoded element by element.
    /// </summary>
    internal static void Reference(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, Span<float> output, int oStride,
        int tokens, int group, int pos0, int window, float scale)
    {
        Check(keys, values, q, qStride, output, oStride, tokens, group, pos0, window);
        int kw = keys.Width, vw = values.Width;
        var k = new float[kw];
        var v = new float[vw];
        for (int i = 0; i < tokens; i++)
        {
            int pos = pos0 + i, lo = WindowStart(pos, window);
            for (int j = 0; j < group; j++)
            {
                var qr = q.Slice(i * qStride + j * kw, kw);
                var scores = new double[pos + 1 - lo];
                for (int t = lo; t <= pos; t++)
                {
                    KvRowCodec.DecodeReference(keys.Type, keys.Rows.Slice(t * keys.RowStride + keys.RowOffset), k);
                    double dot = 0;
                    for (int c = 0; c < kw; c++) dot += (double)qr[c] * k[c];
                    scores[t - lo] = dot * scale;
                }
                double m = scores.Max(), total = 0;
                for (int t = 0; t < scores.Length; t++) total += scores[t] = Math.Exp(scores[t] - m);
                var acc = new double[vw];
                for (int t = lo; t <= pos; t++)
                {
                    KvRowCodec.DecodeReference(values.Type, values.Rows.Slice(t * values.RowStride + values.RowOffset), v);
                    for (int c = 0; c < vw; c++) acc[c] += scores[t - lo] * v[c];
                }
                var o = output.Slice(i * oStride + j * vw, vw);
                for (int c = 0; c < vw; c++) o[c] = (float)(acc[c] / total);
            }
        }
    }
}
