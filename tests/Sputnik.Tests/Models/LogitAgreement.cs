using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>Two loads of one model (different weight layouts) giving the same logits within a float tolerance.</summary>
internal static class LogitAgreement
{
    /// <summary>
    /// The prompt, then <paramref name="steps"/> single tokens (<paramref name="firstNext"/>, +1, …), F32 caches: every
    /// logit of <paramref name="got"/> within <paramref name="tolerance"/> × the largest |logit| of <paramref name="want"/>.
    /// </summary>
    public static void AssertAgree(LanguageModel got, LanguageModel want, int[] prompt, int steps, int firstNext, float tolerance = 1e-4f)
    {
        var s1 = got.CreateState(32, KvCacheType.F32);
        var s2 = want.CreateState(32, KvCacheType.F32);
        var l1 = got.Forward(s1, prompt).ToArray();
        var l2 = want.Forward(s2, prompt).ToArray();
        for (int step = 0; step < steps; step++)
        {
            float scale = l2.Max(Math.Abs);
            for (int i = 0; i < l1.Length; i++)
                Assert.True(Math.Abs(l1[i] - l2[i]) <= tolerance * scale, $"step {step} logit {i}: {l1[i]} vs {l2[i]}");
            l1 = got.Forward(s1, [firstNext + step]).ToArray();
            l2 = want.Forward(s2, [firstNext + step]).ToArray();
        }
    }
}
