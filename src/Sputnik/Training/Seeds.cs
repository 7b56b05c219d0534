namespace Sputnik.Training;

/// <summary>
/// Derives per-step and per-sequence seeds. HashCode.Combine is randomised per process, so runs with the same
/// --seed differed; this mix (SplitMix64 finaliser) is the same on every run and platform.
/// </summary>
internal static class Seeds
{
    public static int Mix(params ReadOnlySpan<int> parts)
    {
        ulong h = 0x9E3779B97F4A7C15UL;
        foreach (int p in parts)
        {
            h ^= (uint)p;
            h += 0x9E3779B97F4A7C15UL;
            h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL;
            h = (h ^ (h >> 27)) * 0x94D049BB133111EBUL;
            h ^= h >> 31;
        }
        return (int)(h & 0x7FFFFFFF);
    }
}
