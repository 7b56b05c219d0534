namespace Sputnik.Models;

/// <summary>
/// A sequence's attention cache seen as raw byte planes, one row per position in each (a KV head's keys or values in
/// one layer, or a layer's MLA latent rows): what the server's prompt cache copies out and back. Bytes rather than floats, so a
/// restore is bit-exact and converts nothing, whatever the storage type.
/// </summary>
internal interface ICacheRows
{
    /// <summary>Planes per sequence (every layer's tensors).</summary>
    int Planes { get; }

    /// <summary>Bytes of one position in plane <paramref name="plane"/> (a KV cache's key and value planes differ when their types do).</summary>
    int RowBytes(int plane);

    /// <summary>Bytes of one position in all planes together.</summary>
    long PositionBytes
    {
        get
        {
            long bytes = 0;
            for (int p = 0; p < Planes; p++) bytes += RowBytes(p);
            return bytes;
        }
    }

    /// <summary>Names the storage layout; rows copied from one cache only fit another with the same layout.</summary>
    string Layout { get; }

    /// <summary>The stored bytes of positions [pos0, pos0 + count) of one plane.</summary>
    ReadOnlySpan<byte> Rows(int plane, int pos0, int count);

    /// <summary>
    /// Stores <paramref name="rows"/> (whole rows of plane <paramref name="plane"/>) as positions pos0 on: the way
    /// back from a copy, through the cache, so it knows what it holds (KvCache.HalvesFinite).
    /// </summary>
    void WriteRows(int plane, int pos0, ReadOnlySpan<byte> rows);
}
