namespace Sputnik.Tensors;

/// <summary>
/// The orthonormal Walsh–Hadamard rotation H_n (Sylvester order, entries ±1/√n; H·H = I) applied to consecutive
/// n-value chunks, as llama.cpp applies it to queries, keys and values around a quantized KV cache: a rotated head
/// spreads an outlier over all its values, so 8- and 4-bit blocks lose less, and since H is orthonormal and its
/// own inverse, q·k and Σ p·v are unchanged once the output is rotated back.
/// </summary>
internal static class Hadamard
{
    /// <summary>
    /// Rotation size llama.cpp uses for a quantized key head of <paramref name="headDim"/> values: the largest power
    /// of two from 64 up that divides it; 0 (no rotation) when 64 does not.
    /// </summary>
    public static int KeySize(int headDim)
    {
        if (headDim <= 0 || headDim % 64 != 0) return 0;
        int n = 64;
        while (headDim % (2 * n) == 0) n *= 2;
        return n;
    }

    /// <summary>Rotation size for a quantized value head: 64 when it divides the head (llama.cpp found the smallest best for V), else 0.</summary>
    public static int ValueSize(int headDim) => headDim > 0 && headDim % 64 == 0 ? 64 : 0;

    /// <summary>x ← H_n x for each n-value chunk of <paramref name="x"/> (fast transform: n·log n additions, one scale).</summary>
    public static void Rotate(Span<float> x, int n)
    {
        if (n <= 0) return;
        if ((n & (n - 1)) != 0 || x.Length % n != 0) throw new ArgumentException($"a Hadamard rotation of size {n} over {x.Length} values");
        float scale = 1f / MathF.Sqrt(n);
        for (int c = 0; c < x.Length; c += n)
        {
            var v = x.Slice(c, n);
            for (int h = 1; h < n; h *= 2)
                for (int i = 0; i < n; i += 2 * h)
                    for (int j = i; j < i + h; j++)
                    {
                        float a = v[j], b = v[j + h];
                        v[j] = a + b;
                        v[j + h] = a - b;
                    }
            for (int j = 0; j < n; j++) v[j] *= scale;
        }
    }
}
