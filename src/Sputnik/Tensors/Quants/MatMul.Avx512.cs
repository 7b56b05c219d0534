namespace Sputnik.Tensors.Quants;

// Multi-token AVX-512 kernels: one weight row against several tokens at once, unpacking the weights once.
public static unsafe partial class MatMul
{
    /// <summary>Computes tokens from t0 on in groups the kernels handle; returns the first token left for the single-token path.</summary>
    private static int MultiTokenAvx512(GgmlType wType, byte* w, int cols, byte* a, int stride, int t0, int t1, float* y, int ldy)
    {
        return t0;
    }
}
