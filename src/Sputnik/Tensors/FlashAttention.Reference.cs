using Sputnik.Models;

namespace Sputnik.Tensors;

// The definition the kernels are tested against.
internal static partial class FlashAttention
{
    /// <summary>The query as a quantized key cache sees it: rounded through Q8_0.</summary>
    private static float[] QuantizedQuery(ReadOnlySpan<float> q, int rotation)
    {
        var rotated = q.ToArray();
        Hadamard.Rotate(rotated, rotation);
        var bytes = new byte[KvRowCodec.Bytes(KvCacheType.Q8_0, q.Length)];
        KvRowCodec.Encode(KvCacheType.Q8_0, rotated, bytes);
        var back = new float[q.Length];
        KvRowCodec.DecodeReference(KvCacheType.Q8_0, bytes, back);
        return back;
    }

    /// <summary>
    /// The definition, for tests: every row's scores over its whole window in double precision, a two-pass softmax
    /// (with the head's sink logit in the denominator when given),
    /// and each key and value decoded element by element (the query rotated like the keys and rounded through Q8_0 for
    /// a Q8_0/Q4_0 key cache, through F16 for an F16 one; the output rotated back like the values).
    /// </summary>
    internal static void Reference(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, Span<float> output, int oStride,
        int tokens, int group, int pos0, int window, float scale, ReadOnlySpan<float> sinks = default)
    {
        Check(keys, values, q, qStride, output, oStride, tokens, group, pos0, window, keyEnd: 0);
        int kw = keys.Width, vw = values.Width;
        var k = new float[kw];
        var v = new float[vw];
        for (int i = 0; i < tokens; i++)
        {
            int pos = pos0 + i, lo = WindowStart(pos, window);
            for (int j = 0; j < group; j++)
            {
                var qr = q.Slice(i * qStride + j * kw, kw);
                if (KvRowCodec.IsBlockFormat(keys.Type)) qr = QuantizedQuery(qr, keys.Rotation);
                else if (keys.Type == KvCacheType.F16) qr = qr.ToArray().Select(x => (float)(Half)x).ToArray();
                var scores = new double[pos + 1 - lo];
                for (int t = lo; t <= pos; t++)
                {
                    KvRowCodec.DecodeReference(keys.Type, keys.Rows.Slice(keys.Row(t) * keys.RowStride + keys.RowOffset), k);
                    double dot = 0;
                    for (int c = 0; c < kw; c++) dot += (double)qr[c] * k[c];
                    scores[t - lo] = dot * scale;
                }
                double m = scores.Max(), total = 0;
                if (!sinks.IsEmpty) m = Math.Max(m, sinks[j]);
                for (int t = 0; t < scores.Length; t++) total += scores[t] = Math.Exp(scores[t] - m);
                if (!sinks.IsEmpty) total += Math.Exp(sinks[j] - m); // a score with no value
                var acc = new double[vw];
                for (int t = lo; t <= pos; t++)
                {
                    KvRowCodec.DecodeReference(values.Type, values.Rows.Slice(values.Row(t) * values.RowStride + values.RowOffset), v);
                    for (int c = 0; c < vw; c++) acc[c] += scores[t - lo] * v[c];
                }
                var o = output.Slice(i * oStride + j * vw, vw);
                for (int c = 0; c < vw; c++) o[c] = (float)(acc[c] / total);
                Hadamard.Rotate(o, values.Rotation);
            }
        }
    }
}
