using System.Numerics.Tensors;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// The SwiGLU feed-forward of a chunk of prompt tokens, as "slots": one slot is one expert (gate, up, down) with the
/// tokens sent to it and their weights; out[token] = Σ_slot weight · down(silu(gate·x) ⊙ up·x). Routed experts are
/// grouped: a chunk's tokens are gathered per selected expert, so each expert's weights stream once per chunk
/// through the MatMul kernels instead of once per token. A dense FFN, and the shared experts, are one slot over
/// every token with weight 1. All slots' gate/up rows are one parallel loop and all down rows another.
/// Buffers grow to the largest chunk seen; delegates are bound once, so a chunk allocates nothing once warm.
/// </summary>
internal sealed class ExpertBatch
{
    private readonly WorkerPool _pool;
    private readonly int _dim;
    private readonly Action<int, int> _prepGateUpBody, _gateUpBody, _swiGluBody, _prepDownBody, _downBody;

    // Per slot: its matrices, its gathered rows [RowStart, RowStart + Count), and offsets into the shared buffers.
    private readonly WeightMatrix[] _gate, _up, _down;
    private readonly int[] _rowStart, _count, _guStart, _downStart;
    private readonly long[] _hOff, _gateAct, _upAct, _downAct;
    private readonly bool[] _upSharesInput;
    private readonly int[] _expertOf; // per slot: the routed expert, −1 for an all-tokens slot
    private int _slots, _rows;
    // The routed experts' biases and clamped SwiGLU of the current call (gpt-oss); null / false otherwise.
    private ExpertBiases? _biases;
    private long _hTotal;
    // The adapters of each token of the current call, and the low-rank path's job.
    private LoraRows _lora;
    private readonly LoraJob _loraJob;

    // Per gathered row: slot, source token, weight.
    private int[] _slotOf = [], _tokenOf = [];
    private float[] _weightOf = [];
    private float[] _in = [], _h1 = [], _h3 = [], _out = [];
    private byte[] _actGate = [], _actUp = [], _actDown = [];
    private int[] _perExpert = [], _cursor = [];

    public ExpertBatch(WorkerPool pool, int dim, int maxSlots)
    {
        _pool = pool;
        _dim = dim;
        _gate = new WeightMatrix[maxSlots];
        _up = new WeightMatrix[maxSlots];
        _down = new WeightMatrix[maxSlots];
        _rowStart = new int[maxSlots + 1];
        _count = new int[maxSlots];
        _guStart = new int[maxSlots + 1];
        _downStart = new int[maxSlots + 1];
        _hOff = new long[maxSlots];
        _gateAct = new long[maxSlots];
        _upAct = new long[maxSlots];
        _downAct = new long[maxSlots];
        _upSharesInput = new bool[maxSlots];
        _expertOf = new int[maxSlots];
        _prepGateUpBody = PrepareGateUp;
        _gateUpBody = GateUpRows;
        _swiGluBody = (i0, i1) =>
        {
            if (_biases is { } b) Ops.SwiGluOai(_h1.AsSpan(i0, i1 - i0), _h3.AsSpan(i0, i1 - i0), b.Alpha, b.Limit);
            else Ops.SwiGlu(_h1.AsSpan(i0, i1 - i0), _h3.AsSpan(i0, i1 - i0));
        };
        _prepDownBody = PrepareDown;
        _downBody = DownRows;
        _loraJob = new LoraJob(pool);
    }

    /// <summary>A dense SwiGLU over the n rows of x (n × dim) into output (n × dim); token t runs with <paramref name="lora"/>'s adapters of row t.</summary>
    public void RunDense(WeightMatrix gate, WeightMatrix up, WeightMatrix down, float[] x, int n, float[] output, LoraRows lora)
    {
        Reserve(n);
        _slots = 0;
        _rows = 0;
        _biases = null;
        _lora = lora;
        AddAllTokensSlot(gate, up, down, n);
        Execute(x, n, output);
    }

    /// <summary>
    /// Routed experts (token t sends to experts[t·k + j] with weight weights[t·k + j]) plus, when given, the shared
    /// expert over every token, weighted by <paramref name="sharedWeights"/> when given (qwen35moe's gate), else 1;
    /// x and output are n × dim. <paramref name="biases"/> (gpt-oss) adds each routed expert's gate/up/down biases
    /// and replaces SiLU by the clamped SwiGLU. Token t runs with <paramref name="lora"/>'s adapters of row t.
    /// </summary>
    public void RunMoe(WeightMatrix[] gateExps, WeightMatrix[] upExps, WeightMatrix[] downExps, ReadOnlySpan<int> experts,
        ReadOnlySpan<float> weights, int k, WeightMatrix? gateShared, WeightMatrix? upShared, WeightMatrix? downShared,
        float[] x, int n, float[] output, LoraRows lora, ReadOnlySpan<float> sharedWeights = default, ExpertBiases? biases = null)
    {
        int e = gateExps.Length;
        _biases = biases;
        _lora = lora;
        Reserve(n * k + n);
        if (_perExpert.Length < e) { _perExpert = new int[e]; _cursor = new int[e]; }
        var per = _perExpert.AsSpan(0, e);
        per.Clear();
        foreach (int id in experts[..(n * k)]) per[id]++;
        // Counting sort by expert: each selected expert becomes a slot over a contiguous run of gathered rows.
        _slots = 0;
        _rows = 0;
        for (int id = 0; id < e; id++)
        {
            if (per[id] == 0) continue;
            int j = _slots++;
            (_gate[j], _up[j], _down[j]) = (gateExps[id], upExps[id], downExps[id]);
            _expertOf[j] = id;
            _rowStart[j] = _rows;
            _count[j] = per[id];
            _cursor[id] = _rows;
            for (int r = _rows; r < _rows + per[id]; r++) _slotOf[r] = j;
            _rows += per[id];
        }
        for (int t = 0; t < n; t++)
            for (int j = 0; j < k; j++)
            {
                int r = _cursor[experts[t * k + j]]++;
                _tokenOf[r] = t;
                _weightOf[r] = weights[t * k + j];
            }
        if (gateShared != null) AddAllTokensSlot(gateShared, upShared!, downShared!, n, sharedWeights);
        Execute(x, n, output);
    }

    private void AddAllTokensSlot(WeightMatrix gate, WeightMatrix up, WeightMatrix down, int n, ReadOnlySpan<float> tokenWeights = default)
    {
        int j = _slots++;
        (_gate[j], _up[j], _down[j]) = (gate, up, down);
        _expertOf[j] = -1;
        _rowStart[j] = _rows;
        _count[j] = n;
        for (int t = 0; t < n; t++)
        {
            _slotOf[_rows + t] = j;
            _tokenOf[_rows + t] = t;
            _weightOf[_rows + t] = tokenWeights.IsEmpty ? 1f : tokenWeights[t];
        }
        _rows += n;
    }

    private void Reserve(int rows)
    {
        if (_slotOf.Length >= rows) return;
        _slotOf = new int[rows];
        _tokenOf = new int[rows];
        _weightOf = new float[rows];
    }

    private static bool SameInput(WeightMatrix a, WeightMatrix b) =>
        a.Cols == b.Cols && a.HasKernel == b.HasKernel && (!a.HasKernel || MatVec.ActivationType(a.Type) == MatVec.ActivationType(b.Type));

    private void Execute(float[] x, int n, float[] output)
    {
        int dim = _dim;
        long gateBytes = 0, upBytes = 0, downBytes = 0;
        _hTotal = 0;
        _rowStart[_slots] = _rows;
        for (int j = 0; j < _slots; j++)
        {
            int c = _count[j];
            _hOff[j] = _hTotal;
            _hTotal += (long)c * _gate[j].Rows;
            _gateAct[j] = gateBytes;
            gateBytes += (long)c * _gate[j].InputBytes;
            _upSharesInput[j] = SameInput(_gate[j], _up[j]);
            _upAct[j] = upBytes;
            if (!_upSharesInput[j]) upBytes += (long)c * _up[j].InputBytes;
            _downAct[j] = downBytes;
            downBytes += (long)c * _down[j].InputBytes;
            _guStart[j + 1] = _guStart[j] + 2 * _gate[j].Rows;
            _downStart[j + 1] = _downStart[j] + dim;
        }
        // Experts re-laid at first use: before the rows go to several threads, so they do not queue on its lock.
        for (int j = 0; j < _slots; j++)
        {
            _gate[j].EnsureRelaid();
            _up[j].EnsureRelaid();
            _down[j].EnsureRelaid();
        }
        Grow(ref _in, (long)_rows * dim);
        Grow(ref _out, (long)_rows * dim);
        Grow(ref _h1, _hTotal);
        Grow(ref _h3, _hTotal);
        Grow(ref _actGate, gateBytes);
        Grow(ref _actUp, upBytes);
        Grow(ref _actDown, downBytes);

        for (int r = 0; r < _rows; r++) x.AsSpan(_tokenOf[r] * dim, dim).CopyTo(_in.AsSpan(r * dim, dim));
        _pool.For(_rows, _prepGateUpBody, minPerThread: Math.Max(1, 16384 / dim));
        _pool.For(_guStart[_slots], _gateUpBody, minPerThread: Math.Max(1, 32768 / (dim * Math.Max(1, _rows / _slots))), align: Interleaving.Rows);
        bool lora = _lora.Any;
        if (lora) AddLora(gateUp: true);
        _pool.For((int)_hTotal, _swiGluBody, minPerThread: 1 << 15);
        // Like the gate/up inputs: a decode step's k rows are quantized inline, not handed to the workers.
        _pool.For(_rows, _prepDownBody, minPerThread: Math.Max(4, 16384 / Math.Max(1, _gate[0].Rows)));
        _pool.For(_downStart[_slots], _downBody, minPerThread: Math.Max(1, 32768 / Math.Max(1, (int)(_hTotal / Math.Max(1, _slots)))), align: Interleaving.Rows);
        if (lora) AddLora(gateUp: false);
        _lora = default;

        // Scatter-add, weighted, back to each row's token (sequential: a few MACs per output element).
        var outAll = output.AsSpan(0, n * dim);
        outAll.Clear();
        for (int r = 0; r < _rows; r++)
        {
            var dst = outAll.Slice(_tokenOf[r] * dim, dim);
            TensorPrimitives.MultiplyAdd(_out.AsSpan(r * dim, dim), _weightOf[r], dst, dst);
        }
    }

    /// <summary>
    /// The adapters' deltas of every slot's gate and up products (before the activation), or of its down product
    /// (before the weighted scatter), each gathered row with the adapters of the token it came from.
    /// </summary>
    private void AddLora(bool gateUp)
    {
        int dim = _dim;
        for (int j = 0; j < _slots; j++)
        {
            int c = _count[j], rows = _gate[j].Rows, h = (int)_hOff[j], first = _rowStart[j];
            if (gateUp)
            {
                _loraJob.Add(_gate[j], _lora, _in, first * dim, dim, _h1, h, rows, c, _tokenOf, first);
                _loraJob.Add(_up[j], _lora, _in, first * dim, dim, _h3, h, rows, c, _tokenOf, first);
            }
            else _loraJob.Add(_down[j], _lora, _h1, h, rows, _out, first * dim, dim, c, _tokenOf, first);
        }
    }

    private static void Grow<T>(ref T[] buffer, long length)
    {
        if (buffer.Length < length) buffer = new T[checked((int)length)];
    }

    private void PrepareGateUp(int r0, int r1)
    {
        int dim = _dim;
        for (int r = r0; r < r1; r++)
        {
            int j = _slotOf[r], i = r - _rowStart[j];
            var x = _in.AsSpan(r * dim, dim);
            var g = _gate[j];
            var gateIn = _actGate.AsSpan((int)(_gateAct[j] + (long)i * g.InputBytes), g.InputBytes);
            // A token sent to several experts (every row of a decode step) is quantized once: the same bytes.
            int p = _slotOf[r - (r > r0 ? 1 : 0)];
            if (r > r0 && _tokenOf[r - 1] == _tokenOf[r] && SameInput(_gate[p], g))
                _actGate.AsSpan((int)(_gateAct[p] + (long)(r - 1 - _rowStart[p]) * g.InputBytes), g.InputBytes).CopyTo(gateIn);
            else g.PrepareInput(x, gateIn);
            if (!_upSharesInput[j])
            {
                var u = _up[j];
                u.PrepareInput(x, _actUp.AsSpan((int)(_upAct[j] + (long)i * u.InputBytes), u.InputBytes));
            }
        }
    }

    /// <summary>Units [u0, u1) of all slots' gate rows then up rows (slot j owns [guStart[j], guStart[j + 1])).</summary>
    private void GateUpRows(int u0, int u1)
    {
        for (int j = SlotAt(_guStart, u0); j < _slots && _guStart[j] < u1; j++)
        {
            int rows = _gate[j].Rows, c = _count[j];
            int lo = Math.Max(u0, _guStart[j]) - _guStart[j], hi = Math.Min(u1, _guStart[j + 1]) - _guStart[j];
            var gateIn = _actGate.AsSpan((int)_gateAct[j], c * _gate[j].InputBytes);
            var upIn = _upSharesInput[j] ? gateIn : _actUp.AsSpan((int)_upAct[j], c * _up[j].InputBytes);
            var h1 = _h1.AsSpan((int)_hOff[j], c * rows);
            var h3 = _h3.AsSpan((int)_hOff[j], c * rows);
            if (lo < rows) _gate[j].MatMulRows(gateIn, c, h1, lo, Math.Min(hi, rows));
            if (hi > rows) _up[j].MatMulRows(upIn, c, h3, Math.Max(lo, rows) - rows, hi - rows);
            if (_biases is { } b && _expertOf[j] >= 0)
            {
                if (lo < rows) AddBias(b.Gate[_expertOf[j]], h1, c, rows, lo, Math.Min(hi, rows));
                if (hi > rows) AddBias(b.Up[_expertOf[j]], h3, c, rows, Math.Max(lo, rows) - rows, hi - rows);
            }
        }
    }

    /// <summary>y[t·ld + r] += bias[r] for the c tokens and the rows [r0, r1) this thread computed.</summary>
    private static void AddBias(float[] bias, Span<float> y, int c, int ld, int r0, int r1)
    {
        var b = bias.AsSpan(r0, r1 - r0);
        for (int t = 0; t < c; t++)
        {
            var row = y.Slice(t * ld + r0, r1 - r0);
            TensorPrimitives.Add(row, b, row);
        }
    }

    private void PrepareDown(int r0, int r1)
    {
        for (int r = r0; r < r1; r++)
        {
            int j = _slotOf[r], i = r - _rowStart[j], rows = _gate[j].Rows;
            var d = _down[j];
            d.PrepareInput(_h1.AsSpan((int)(_hOff[j] + (long)i * rows), rows), _actDown.AsSpan((int)(_downAct[j] + (long)i * d.InputBytes), d.InputBytes));
        }
    }

    private void DownRows(int u0, int u1)
    {
        int dim = _dim;
        for (int j = SlotAt(_downStart, u0); j < _slots && _downStart[j] < u1; j++)
        {
            int c = _count[j];
            int lo = Math.Max(u0, _downStart[j]) - _downStart[j], hi = Math.Min(u1, _downStart[j + 1]) - _downStart[j];
            var outRows = _out.AsSpan(_rowStart[j] * dim, c * dim);
            _down[j].MatMulRows(_actDown.AsSpan((int)_downAct[j], c * _down[j].InputBytes), c, outRows, lo, hi);
            if (_biases is { } b && _expertOf[j] >= 0) AddBias(b.Down[_expertOf[j]], outRows, c, dim, lo, hi);
        }
    }

    /// <summary>The slot whose unit range [starts[j], starts[j + 1]) holds <paramref name="unit"/>.</summary>
    private int SlotAt(int[] starts, int unit)
    {
        int lo = 0, hi = _slots - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (starts[mid] <= unit) lo = mid; else hi = mid - 1;
        }
        return lo;
    }
}

/// <summary>
/// What gpt-oss's routed experts add to the SwiGLU slots: per expert a gate, up and down bias (ffn_*_exps.bias rows),
/// and the clamped activation ggml_swiglu_oai(gate, up, Alpha, Limit).
/// </summary>
internal sealed record ExpertBiases(float[][] Gate, float[][] Up, float[][] Down, float Alpha, float Limit);
