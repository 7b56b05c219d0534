namespace Sputnik.Models;

/// <summary>Element format of the KV cache (llama.cpp's --cache-type-k/-v names: f32, f16, q8_0, q4_0).</summary>
public enum KvCacheType
{
    /// <summary>IEEE half: half the memory and bandwidth of F32; attention converts tiles back to float.</summary>
    F16,
    /// <summary>Full float: exact, twice the memory of F16.</summary>
    F32,
    /// <summary>ggml's Q8_0: 32 signed bytes and one F16 scale per block (8.5 bits a value); needs a head size that is a multiple of 32.</summary>
    Q8_0,
    /// <summary>ggml's Q4_0: 32 four-bit values and one F16 scale per block (4.5 bits a value); needs a head size that is a multiple of 32.</summary>
    Q4_0,
}
