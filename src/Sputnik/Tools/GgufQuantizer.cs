using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

namespace Sputnik.Tools;

/// <summary>What <see cref="GgufQuantizer.Quantize"/> did: the files written (several for a split output) and their total size.</summary>
internal sealed record QuantizeResult(FileType FileType, long InputBytes, long OutputBytes, IReadOnlyDictionary<GgmlType, int> TensorTypes,
    IReadOnlyList<string> OutputPaths);

/// <summary>
/// Re-encodes a GGUF model to another file type the way llama-quantize does (see <see cref="QuantMix"/>): same tensor
/// names, order, dims and metadata, with <c>general.file_type</c> (and <c>general.quantization_version</c>) updated.
/// Any type Sputnik can decode is accepted as input (rows are dequantized, then quantized); tensors whose type does
/// not change are copied byte for byte. Streams one tensor at a time and writes to a temporary file that is moved
/// into place only when complete. A split input is read as one model; with <c>split</c> limits the output is written
/// as a split set (<see cref="GgufWriter.WriteSplit"/>), else as one file.
/// </summary>
internal static class GgufQuantizer
{
    /// <summary>ggml's GGML_QNT_VERSION, which llama-quantize writes as general.quantization_version.</summary>
    public const uint QuantizationVersion = 2;

    /// <summary>
    /// A null <paramref name="fileType"/> keeps every tensor's type (export --merge without --type); <paramref name="merge"/>
    /// folds a LoRA adapter into the weights it adapts (their rows decoded, the delta added, re-encoded).
    /// </summary>
    public static unsafe QuantizeResult Quantize(string inputPath, string outputPath, FileType? fileType, int threads = 0,
        Action<ToolProgress>? progress = null, GgufSplitLimits? split = null, LoraMerge? merge = null)
    {
        if (threads <= 0) threads = Environment.ProcessorCount;
        split?.Validate();
        if (!File.Exists(inputPath)) throw new FileNotFoundException($"model file not found: {inputPath}", inputPath);
        if (split == null && Directory.Exists(outputPath)) throw new ArgumentException($"output '{outputPath}' is a directory");

        using var src = GgufFile.Open(inputPath);
        // The shard names depend on how many shards there will be; every name a split output could take starts with
        // the prefix, so compare the input files against the output path and that prefix's shard pattern.
        foreach (string input in src.ShardPaths)
            if (SameFile(input, outputPath) || (split != null && IsShardOf(input, GgufSplit.OutputPrefix(outputPath))))
                throw new ArgumentException($"output '{outputPath}' would overwrite the input file {input}; choose another output path");
        bool hasOutput = src.FindTensor(TensorNames.Weight(TensorNames.Output)) != null;
        int layers = CountLayers(src);
        var mix = fileType is { } ft ? new QuantMix(ft, layers, hasOutput) : null;
        merge?.Bind(src);

        var writer = new GgufWriter();
        writer.CopyMetadata(src);
        if (fileType is { } target)
        {
            writer.Set(GgufKeys.GeneralFileType, (uint)target);
            if (QuantMix.IsQuantized(QuantMix.DefaultType(target))) writer.Set(GgufKeys.GeneralQuantizationVersion, QuantizationVersion);
        }

        var plan = src.Tensors.Select(t => (Info: t, Type: mix?.Choose(t.Name, t.Dims, t.Type) ?? t.Type)).ToArray();
        foreach (var (t, type) in plan)
        {
            if (type == t.Type && merge?.Adapts(t.Name) != true) continue;
            if (!Dequant.IsSupported(t.Type))
                throw new NotSupportedException($"tensor '{t.Name}' is {t.Type}, which Sputnik cannot decode");
            if (!Quant.IsSupported(type))
                throw new NotSupportedException($"tensor '{t.Name}' would need {type}, which Sputnik cannot encode");
        }

        long total = plan.Sum(p => GgufWriter.ByteSize(p.Type, p.Info.Dims));
        long done = 0;
        for (int i = 0; i < plan.Length; i++)
        {
            var (info, type) = plan[i];
            int index = i;
            void Written(long n)
            {
                done += n;
                progress?.Invoke(new ToolProgress(info.Name, index, plan.Length, done, total));
            }
            writer.AddTensor(info.Name, type, info.Dims, output =>
            {
                progress?.Invoke(new ToolProgress(info.Name, index, plan.Length, done, total));
                var delta = merge?.DeltaOf(info.Name);
                if (type == info.Type && delta == null)
                {
                    TensorStreams.CopyRaw(output, src.DataPointer(info), info.ByteSize, Written);
                    return;
                }
                Requantize(src, info, type, threads, output, Written, delta);
            });
        }
        IReadOnlyList<string> written;
        if (split == null)
        {
            writer.Write(outputPath);
            written = [outputPath];
        }
        else written = writer.WriteSplit(outputPath, split);
        var counts = plan.GroupBy(p => p.Type).ToDictionary(g => g.Key, g => g.Count());
        src.TryGetUInt32(GgufKeys.GeneralFileType, out uint sourceType);
        return new QuantizeResult(fileType ?? (FileType)sourceType, src.TotalFileSize, written.Sum(p => new FileInfo(p).Length), counts, written);
    }

    /// <summary>Whether <paramref name="path"/> is named like a shard of a split set with this prefix (any shard number and count).</summary>
    private static bool IsShardOf(string path, string prefix)
    {
        return GgufSplit.TryParseShardName(Path.GetFullPath(path), out string shardPrefix, out _, out _)
            && shardPrefix == Path.GetFullPath(prefix);
    }

    private static unsafe void Requantize(GgufFile src, GgufTensorInfo info, GgmlType type, int threads, Stream output, Action<long> written,
        RowDelta? delta = null)
    {
        long cols = info.Columns;
        long srcRowBytes = GgmlTypeInfo.RowBytes(info.Type, cols);
        long dstRowBytes = GgmlTypeInfo.RowBytes(type, cols);
        byte* basePtr = src.DataPointer(info);
        using var scratch = new ThreadLocal<float[]>(() => new float[cols]);
        TensorStreams.WriteRows(output, info.Rows, dstRowBytes, threads, (row, dst) =>
        {
            var x = scratch.Value!;
            Dequant.Row(info.Type, new ReadOnlySpan<byte>(basePtr + row * srcRowBytes, (int)srcRowBytes), x);
            delta?.Invoke(row, x);
            Quant.Row(type, x, dst);
        }, written);
    }

    /// <summary>n_layer: <c>{arch}.block_count</c>, else the number of blk.N prefixes.</summary>
    internal static int CountLayers(GgufFile f)
    {
        if (f.Architecture is { } arch && f.TryGetInt64(GgufKeys.Of(arch, GgufKeys.BlockCount), out long n) && n > 0) return (int)n;
        return f.Tensors.Select(t => TensorNames.LayerOf(t.Name)).DefaultIfEmpty(-1).Max() + 1;
    }

    internal static bool SameFile(string a, string b)
    {
        string fa = Path.GetFullPath(a), fb = Path.GetFullPath(b);
        if (string.Equals(fa, fb, StringComparison.Ordinal)) return true;
        // Links and other spellings of one file: compare resolved targets when both exist.
        try
        {
            if (File.Exists(fa) && File.Exists(fb))
            {
                string ra = new FileInfo(fa).ResolveLinkTarget(true)?.FullName ?? fa;
                string rb = new FileInfo(fb).ResolveLinkTarget(true)?.FullName ?? fb;
                return string.Equals(ra, rb, StringComparison.Ordinal);
            }
        }
        catch (IOException)
        {
        }
        return false;
    }
}

/// <summary>Changes one decoded row of a tensor before it is re-encoded.</summary>
internal delegate void RowDelta(long row, Span<float> values);

/// <summary>
/// `export --merge`: a LoRA adapter folded into its base's weights, W' = W + scale·alpha/rank·B·A, one output row at a
/// time (row o of expert e gains Σ_k B[e][o, k]·A[e][k, :]) while the quantizer decodes and re-encodes the tensor.
/// </summary>
internal sealed class LoraMerge(string adapterPath, float scale)
{
    private Dictionary<string, LoraPair> _pairs = [];
    private LoraAdapter? _adapter;

    /// <summary>Reads the adapter against the base being written (its checks: architecture, tensors, shapes).</summary>
    public void Bind(GgufFile baseModel)
    {
        _adapter = LoraAdapter.Load(adapterPath, baseModel);
        _pairs = _adapter.Pairs.ToDictionary(p => p.BaseName);
    }

    public bool Adapts(string tensor) => _pairs.ContainsKey(tensor);

    /// <summary>Adds the delta of one row of <paramref name="tensor"/> to its decoded values; null for a tensor the adapter does not touch.</summary>
    public RowDelta? DeltaOf(string tensor)
    {
        if (!_pairs.TryGetValue(tensor, out var pair)) return null;
        float s = _adapter!.EffectiveScale(pair, scale);
        return (row, x) =>
        {
            int expert = (int)(row / pair.Outputs), o = (int)(row % pair.Outputs);
            var a = pair.AOf(expert);
            var b = pair.BOf(expert).Slice(o * pair.Rank, pair.Rank);
            for (int k = 0; k < pair.Rank; k++)
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(a.Slice(k * pair.Inputs, pair.Inputs), s * b[k], x, x);
        };
    }
}
