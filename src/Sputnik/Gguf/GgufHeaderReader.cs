using System.Buffers.Binary;
using System.Text;
using Sputnik.Tensors;

namespace Sputnik.Gguf;

/// <summary>
/// Bounds-checked cursor over the GGUF header bytes. Every length or count read from the file is checked
/// against the bytes that remain before anything is allocated, so a lying field fails fast with a clear message.
/// </summary>
internal unsafe sealed class GgufHeaderReader(byte* start, long length, Func<long, int, string, string[]>? lazyStrings = null)
{
    /// <summary>String arrays at least this long are handed to the lazy reader instead of being kept (see <see cref="GgufArray"/>).</summary>
    public const int LazyStringArrayMin = 4096;

    // Nested arrays deeper than this are not used by any real model and would only serve to blow the stack.
    private const int MaxArrayDepth = 8;
    private const long MaxStringBytes = 1L << 30;
    // Counts are only bounded by the bytes left in the file, which for a real model includes gigabytes of tensor
    // data; arrays of references are therefore grown as elements are actually read, not sized from the count.
    private const int MaxPreallocatedItems = 1 << 16;

    public long Position { get; private set; }

    public long Remaining => length - Position;

    private ReadOnlySpan<byte> Take(int n, string what)
    {
        if (n < 0 || Remaining < n)
            throw new GgufFormatException($"truncated file: {what} needs {n} bytes at offset {Position}, but the file ends at {length}");
        var span = new ReadOnlySpan<byte>(start + Position, n);
        Position += n;
        return span;
    }

    /// <summary>Like Take for a metadata value; the "value of 'key'" text is only built when the read fails.</summary>
    private ReadOnlySpan<byte> TakeValue(int n, string key)
    {
        if (n >= 0 && Remaining >= n) return Take(n, key);
        return Take(n, $"value of '{DisplayText.Name(key)}'");
    }

    public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));

    /// <summary>Reads a count or length: u64 in GGUF v2/v3, u32 in v1 (which we reject earlier).</summary>
    public long Count(string what, long minBytesPerItem)
    {
        long at = Position;
        ulong n = U64(what);
        if (minBytesPerItem > 0 && n > (ulong)(Remaining / minBytesPerItem))
            throw new GgufFormatException($"{what} = {n} at offset {at} is impossible: only {Remaining} bytes remain in the file");
        return (long)n;
    }

    public string String(string what)
    {
        long at = Position;
        long n = Count($"length of {what}", 1);
        if (n > MaxStringBytes)
            throw new GgufFormatException($"{what} at offset {at} claims {n} bytes, more than the 1 GiB limit");
        return Encoding.UTF8.GetString(Take((int)n, what));
    }

    /// <summary>One string of a string array; the error label is only built when the read fails (vocabularies hold 150k strings).</summary>
    private string ArrayString(string key, int index)
    {
        if (Remaining >= 8)
        {
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(start + Position, 8));
            if (n <= (ulong)(Remaining - 8) && n <= MaxStringBytes)
            {
                Position += 8;
                return Encoding.UTF8.GetString(Take((int)n, key));
            }
        }
        return String($"element {index} of '{DisplayText.Name(key)}'");
    }

    /// <summary>Reads <paramref name="count"/> strings of array <paramref name="key"/> starting at <paramref name="position"/>.</summary>
    public string[] Strings(long position, int count, string key)
    {
        Position = position;
        var items = new string[count];
        for (int i = 0; i < count; i++) items[i] = ArrayString(key, i);
        return items;
    }

    // Steps over one string of a string array; a bad length throws ArrayString's error.
    private void SkipArrayString(string key, int index)
    {
        if (Remaining >= 8)
        {
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(start + Position, 8));
            if (n <= (ulong)(Remaining - 8) && n <= MaxStringBytes)
            {
                Position += 8 + (long)n;
                return;
            }
        }
        String($"element {index} of '{DisplayText.Name(key)}'");
    }

    public GgufValue Value(GgufValueType type, string key, int depth = 0) => new(type, Scalar(type, key, depth));

    private object Scalar(GgufValueType type, string key, int depth)
    {
        switch (type)
        {
            case GgufValueType.UInt8: return TakeValue(1, key)[0];
            case GgufValueType.Int8: return (sbyte)TakeValue(1, key)[0];
            case GgufValueType.UInt16: return BinaryPrimitives.ReadUInt16LittleEndian(TakeValue(2, key));
            case GgufValueType.Int16: return BinaryPrimitives.ReadInt16LittleEndian(TakeValue(2, key));
            case GgufValueType.UInt32: return BinaryPrimitives.ReadUInt32LittleEndian(TakeValue(4, key));
            case GgufValueType.Int32: return BinaryPrimitives.ReadInt32LittleEndian(TakeValue(4, key));
            case GgufValueType.Float32: return BinaryPrimitives.ReadSingleLittleEndian(TakeValue(4, key));
            case GgufValueType.UInt64: return BinaryPrimitives.ReadUInt64LittleEndian(TakeValue(8, key));
            case GgufValueType.Int64: return BinaryPrimitives.ReadInt64LittleEndian(TakeValue(8, key));
            case GgufValueType.Float64: return BinaryPrimitives.ReadDoubleLittleEndian(TakeValue(8, key));
            case GgufValueType.Bool:
            {
                long at = Position;
                byte b = TakeValue(1, key)[0];
                if (b > 1) throw new GgufFormatException($"metadata '{DisplayText.Name(key)}': bool byte {b} at offset {at} is neither 0 nor 1");
                return b == 1;
            }
            case GgufValueType.String: return String($"string value of '{DisplayText.Name(key)}'");
            case GgufValueType.Array: return Array(key, depth);
            default:
                throw new GgufFormatException($"metadata '{DisplayText.Name(key)}': unknown value type {(uint)type} at offset {Position - 4}");
        }
    }

    private GgufArray Array(string key, int depth)
    {
        if (depth >= MaxArrayDepth)
            throw new GgufFormatException($"metadata '{DisplayText.Name(key)}': arrays nested deeper than {MaxArrayDepth} at offset {Position}");
        long at = Position;
        var elemType = (GgufValueType)U32($"array element type of '{DisplayText.Name(key)}'");
        long minSize = MinEncodedSize(elemType)
            ?? throw new GgufFormatException($"metadata '{DisplayText.Name(key)}': unknown array element type {(uint)elemType} at offset {at}");
        long n = Count($"element count of array '{DisplayText.Name(key)}'", minSize);
        int count = (int)Math.Min(n, int.MaxValue);
        if (count != n) throw new GgufFormatException($"metadata '{DisplayText.Name(key)}': array of {n} elements at offset {at} is too large");
        switch (elemType)
        {
            case GgufValueType.UInt8: return new(elemType, TakeValue(count, key).ToArray());
            case GgufValueType.Int8: return new(elemType, ToArray<sbyte>(count, key));
            case GgufValueType.UInt16: return new(elemType, ToArray<ushort>(count, key));
            case GgufValueType.Int16: return new(elemType, ToArray<short>(count, key));
            case GgufValueType.UInt32: return new(elemType, ToArray<uint>(count, key));
            case GgufValueType.Int32: return new(elemType, ToArray<int>(count, key));
            case GgufValueType.Float32: return new(elemType, ToArray<float>(count, key));
            case GgufValueType.UInt64: return new(elemType, ToArray<ulong>(count, key));
            case GgufValueType.Int64: return new(elemType, ToArray<long>(count, key));
            case GgufValueType.Float64: return new(elemType, ToArray<double>(count, key));
            case GgufValueType.Bool:
            {
                var items = new List<bool>(Math.Min(count, MaxPreallocatedItems));
                for (int i = 0; i < count; i++) items.Add((bool)Scalar(GgufValueType.Bool, key, depth));
                return new(elemType, items.ToArray());
            }
            case GgufValueType.String when lazyStrings != null && count >= LazyStringArrayMin:
            {
                // Check every length now (a lying one fails at open, as for a kept array), keep only where they start.
                long first = Position;
                for (int i = 0; i < count; i++) SkipArrayString(key, i);
                return new(elemType, count, () => lazyStrings(first, count, key));
            }
            case GgufValueType.String:
            {
                var items = new List<string>(Math.Min(count, MaxPreallocatedItems));
                for (int i = 0; i < count; i++) items.Add(ArrayString(key, i));
                return new(elemType, items.ToArray());
            }
            default:
            {
                var items = new List<GgufArray>(Math.Min(count, MaxPreallocatedItems));
                for (int i = 0; i < count; i++) items.Add(Array(key, depth + 1));
                return new(elemType, items.ToArray());
            }
        }
    }

    // Little-endian host assumed (x64/arm64), so the bytes are the values.
    private T[] ToArray<T>(int count, string key) where T : unmanaged
    {
        // Only reachable for files over 2 GiB, where the count passes the bytes-left check; spans stop at 2 GiB.
        if ((long)count * sizeof(T) > int.MaxValue)
            throw new GgufFormatException($"metadata '{DisplayText.Name(key)}': array of {count} {sizeof(T)}-byte elements at offset {Position} is over 2 GiB");
        var bytes = TakeValue(count * sizeof(T), key);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(bytes).ToArray();
    }

    /// <summary>Smallest on-disk size of one value of the type, used to bound counts before allocating.</summary>
    public static long? MinEncodedSize(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
        GgufValueType.Array => 12,
        _ => null,
    };

    public GgufTensorInfo TensorInfo(int index)
    {
        long at = Position;
        string name = String($"name of tensor #{index}");
        string shown = DisplayText.Name(name); // as messages quote it
        uint nDims = U32($"dimension count of tensor '{shown}'");
        if (nDims == 0 || nDims > 4)
            throw new GgufFormatException($"tensor '{shown}' at offset {at}: {nDims} dimensions (1 to 4 allowed)");
        var dims = new long[nDims];
        long elements = 1;
        for (int d = 0; d < nDims; d++)
        {
            ulong v = U64($"dimension {d} of tensor '{shown}'");
            if (v == 0 || v > long.MaxValue)
                throw new GgufFormatException($"tensor '{shown}' at offset {at}: dimension {d} is {v}");
            dims[d] = (long)v;
            if (elements > long.MaxValue / dims[d])
                throw new GgufFormatException($"tensor '{shown}' at offset {at}: element count overflows (dims {string.Join(" x ", dims[..(d + 1)])})");
            elements *= dims[d];
        }
        uint typeId = U32($"type of tensor '{shown}'");
        var type = (GgmlType)typeId;
        if (!GgmlTypeInfo.TryGetBlock(type, out int blockSize, out int blockBytes) || !Enum.IsDefined(type))
            throw new GgufFormatException($"tensor '{shown}' at offset {at}: unknown ggml type id {typeId}");
        if (dims[0] % blockSize != 0)
            throw new GgufFormatException($"tensor '{shown}': row length {dims[0]} is not a multiple of the {type} block size {blockSize}");
        long blocks = elements / blockSize;
        if (blocks > long.MaxValue / blockBytes)
            throw new GgufFormatException($"tensor '{shown}' at offset {at}: byte size overflows");
        ulong offset = U64($"data offset of tensor '{shown}'");
        if (offset > long.MaxValue)
            throw new GgufFormatException($"tensor '{shown}': data offset {offset} is out of range");
        return new GgufTensorInfo(name, dims, type, (long)offset, blocks * blockBytes);
    }
}
