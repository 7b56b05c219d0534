using Sputnik.Tensors;

namespace Sputnik.Gguf;

/// <summary>
/// One tensor's header entry. <see cref="Dims"/> follows ggml order: Dims[0] is the row length (innermost),
/// so a PyTorch weight [out, in] appears as [in, out]. <see cref="Offset"/> is relative to the data start of the
/// file that holds the tensor: <see cref="Shard"/> says which file of a split model (0 for a single file).
/// </summary>
internal sealed record GgufTensorInfo(string Name, long[] Dims, GgmlType Type, long Offset, long ByteSize)
{
    /// <summary>Index of the shard (file) of a split model whose data holds this tensor; 0 for a single file.</summary>
    public int Shard { get; init; }

    /// <summary>Total number of elements (product of dims).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Dims) n *= d;
            return n;
        }
    }

    /// <summary>Row length (Dims[0]).</summary>
    public long Columns => Dims.Length > 0 ? Dims[0] : 1;

    /// <summary>Number of rows: product of Dims[1..].</summary>
    public long Rows => Dims.Length > 0 ? ElementCount / Dims[0] : 1;

    public override string ToString() => $"{Name} {Type} [{string.Join(", ", Dims)}]";
}
