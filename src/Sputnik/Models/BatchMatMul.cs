using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// y (n × W.Rows) = x (n × W.Cols) · Wᵀ for a batch of token rows, rows of W split over the worker pool. The
/// activations are converted to the kernel's input format once and reused while the same source array feeds
/// weights that read the same format (q, kv_a and the router all read the normed input); callers call
/// <see cref="Invalidate"/> after writing to a source. Delegates are bound once, so a call allocates nothing.
/// </summary>
internal sealed class BatchMatMul
{
    private readonly WorkerPool _pool;
    private readonly Action<int, int> _prep, _mul;
    private byte[] _act = [];
    private WeightMatrix? _w;
    private float[] _x = [], _y = [];
    private int _n;
    // What _act holds: _source prepared for _actType with _actTokens rows of _actCols.
    private float[]? _source;
    private GgmlType _actType;
    private int _actTokens, _actCols;

    public BatchMatMul(WorkerPool pool)
    {
        _pool = pool;
        _prep = (t0, t1) => _w!.PrepareInputs(_x, _act, t0, t1);
        _mul = (r0, r1) => _w!.MatMulRows(_act, _n, _y, r0, r1);
    }

    /// <summary>The prepared activations are stale (their source array was written).</summary>
    public void Invalidate() => _source = null;

    public void Run(WeightMatrix w, float[] x, int n, float[] y)
    {
        GgmlType actType = w.HasKernel ? MatVec.ActivationType(w.Type) : GgmlType.F32;
        if (!ReferenceEquals(_source, x) || _actType != actType || _actTokens != n || _actCols != w.Cols)
        {
            long bytes = (long)n * w.InputBytes;
            if (_act.Length < bytes) _act = new byte[checked((int)bytes)];
            _w = w;
            _x = x;
            _pool.For(n, _prep, minPerThread: Math.Max(1, 16384 / w.Cols));
            (_source, _actType, _actTokens, _actCols) = (x, actType, n, w.Cols);
        }
        _w = w;
        _y = y;
        _n = n;
        _pool.For(w.Rows, _mul, minPerThread: (int)Math.Max(1, 32768 / ((long)w.Cols * n)), align: Interleaving.Rows);
        if (ReferenceEquals(y, _source)) _source = null;
    }
}
