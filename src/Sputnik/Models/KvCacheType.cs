namespace Sputnik.Models;

/// <summary>Element format of the KV cache.</summary>
public enum KvCacheType
{
    /// <summary>IEEE half: half the memory and bandwidth of F32; attention converts chunks back to float.</summary>
    F16,
    /// <summary>Full float: exact, twice the memory of F16.</summary>
    F32,
    /// <summary>8-bit integers with one float scale per 32 values (a quarter of F32 plus 1/8); needs a head size that is a multiple of 32.</summary>
    Q8_0,
}
