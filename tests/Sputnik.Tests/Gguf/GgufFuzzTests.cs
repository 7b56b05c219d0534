using System.Diagnostics;
using Sputnik.Gguf;
using Xunit;
using static Sputnik.Tests.Gguf.GgufTestFiles;

namespace Sputnik.Tests.Gguf;

/// <summary>
/// Deterministic mutation fuzzing of a small valid file: every mutant either opens (and then every metadata value
/// and every tensor's bytes can be read) or is rejected with <see cref="GgufFormatException"/>. Anything else —
/// IndexOutOfRange, Overflow, OutOfMemory, Argument, AccessViolation — fails with the seed and the mutation.
/// </summary>
public sealed class GgufFuzzTests(ITestOutputHelper output)
{
    private const int Iterations = 6000;
    private const int MasterSeed = 0x5EED_6609;
    private const long MaxAllocationPerOpen = 64L << 20;

    private static readonly ulong[] InterestingU64 =
    [
        0, 1, 2, 3, 4, 5, 7, 8, 12, 13, 31, 32, 33, 63, 64, 255, 256, 4096, 65535, 65536,
        (1UL << 31) - 1, 1UL << 31, (1UL << 32) - 1, 1UL << 32, 1UL << 40, 1UL << 62, (1UL << 63) - 1, 1UL << 63,
        (1UL << 63) + 1, ulong.MaxValue, ulong.MaxValue - 31, 0x7FFF_FFFF_FFFF_FFE0,
    ];

    private static readonly uint[] InterestingU32 =
    [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 28, 29, 30, 31, 39, 255, 256,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
    ];

    private static long PickOffset(Random r, byte[] b, GgufLayout layout)
    {
        // Mostly the header (that is where the parser lives), often exactly at a field boundary.
        int roll = r.Next(100);
        if (roll < 45) return layout.Fields[r.Next(layout.Fields.Count)].Offset;
        if (roll < 90) return r.NextInt64(Math.Min(layout.HeaderEnd + 8, b.Length));
        return r.NextInt64(b.Length);
    }

    private static (byte[] Bytes, string Description) Mutate(byte[] valid, GgufLayout layout, Random r)
    {
        var b = (byte[])valid.Clone();
        var desc = new List<string>();
        int n = 1 + (r.Next(4) == 0 ? r.Next(1, 4) : 0);
        for (int m = 0; m < n; m++)
        {
            if (b.Length == 0) break;
            long at = Math.Min(PickOffset(r, b, layout), b.Length - 1);
            switch (r.Next(9))
            {
                case 0:
                {
                    int bit = r.Next(8);
                    b[at] ^= (byte)(1 << bit);
                    desc.Add($"flip bit {bit} at {at}");
                    break;
                }
                case 1:
                {
                    byte v = (byte)r.Next(256);
                    b[at] = v;
                    desc.Add($"byte {v} at {at}");
                    break;
                }
                case 2 or 3:
                {
                    if (at + 8 > b.Length) goto case 1;
                    ulong v = r.Next(3) == 0 ? (ulong)r.NextInt64() << r.Next(2) : InterestingU64[r.Next(InterestingU64.Length)];
                    PutU64(b, at, v);
                    desc.Add($"u64 {v} at {at}");
                    break;
                }
                case 4:
                {
                    if (at + 4 > b.Length) goto case 1;
                    uint v = InterestingU32[r.Next(InterestingU32.Length)];
                    PutU32(b, at, v);
                    desc.Add($"u32 {v} at {at}");
                    break;
                }
                case 5:
                {
                    int len = (int)r.NextInt64(b.Length);
                    b = b[..len];
                    desc.Add($"truncate to {len}");
                    break;
                }
                case 6:
                {
                    var ins = new byte[r.Next(1, 17)];
                    if (r.Next(2) == 0) r.NextBytes(ins);
                    b = [.. b.AsSpan(0, (int)at), .. ins, .. b.AsSpan((int)at)];
                    desc.Add($"insert {ins.Length} bytes at {at}");
                    break;
                }
                case 7:
                {
                    int len = (int)Math.Min(r.Next(1, 17), b.Length - at);
                    b = [.. b.AsSpan(0, (int)at), .. b.AsSpan((int)(at + len))];
                    desc.Add($"delete {len} bytes at {at}");
                    break;
                }
                default:
                {
                    // Copy a chunk of the header over another place (duplicates keys, names, length fields ...).
                    long from = PickOffset(r, b, layout);
                    int len = (int)Math.Min(Math.Min(r.Next(4, 40), b.Length - from), b.Length - at);
                    if (len <= 0) goto case 1;
                    b.AsSpan((int)from, len).ToArray().CopyTo(b.AsSpan((int)at));
                    desc.Add($"copy {len} bytes {from}->{at}");
                    break;
                }
            }
        }
        return (b, string.Join("; ", desc));
    }

    [Fact]
    public void Mutated_files_open_cleanly_or_throw_GgufFormatException()
    {
        byte[] valid = Small();
        var layout = new GgufLayout(valid);
        using var tmp = new TempDir();
        string path = tmp.File("fuzz.gguf");

        // Warm up (JIT, first mapping) so the allocation measurements below see only the parse.
        File.WriteAllBytes(path, valid);
        using (var f = GgufFile.Open(path)) ReadEverything(f);

        var master = new Random(MasterSeed);
        int accepted = 0, rejected = 0;
        long maxAlloc = 0;
        var messages = new Dictionary<string, int>();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < Iterations; i++)
        {
            int seed = master.Next();
            var (bytes, desc) = Mutate(valid, layout, new Random(seed));
            File.WriteAllBytes(path, bytes);
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                using var f = GgufFile.Open(path);
                ReadEverything(f);
                accepted++;
            }
            catch (GgufFormatException e)
            {
                rejected++;
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                string kind = e.Message.Split(':', 2)[0];
                kind = kind.Length > 40 ? kind[..40] : kind;
                messages[kind] = messages.GetValueOrDefault(kind) + 1;
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {i}, seed {seed} ({desc}, {bytes.Length} bytes): {e.GetType().FullName}: {e.Message}\n{e.StackTrace}");
            }
            long alloc = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(alloc < MaxAllocationPerOpen, $"iteration {i}, seed {seed} ({desc}): Open allocated {alloc:N0} bytes");
            maxAlloc = Math.Max(maxAlloc, alloc);
        }
        sw.Stop();
        output.WriteLine($"{Iterations} mutants in {sw.Elapsed.TotalSeconds:F2} s: {accepted} opened, {rejected} rejected; max allocation per open {maxAlloc:N0} bytes");
        foreach (var (k, c) in messages.OrderByDescending(kv => kv.Value).Take(15)) output.WriteLine($"  {c,5}  {k}");

        // The mutations must exercise both outcomes, or the fuzz is not testing anything.
        Assert.True(accepted > Iterations / 50, $"only {accepted} mutants opened");
        Assert.True(rejected > Iterations / 2, $"only {rejected} mutants were rejected");
        Assert.True(messages.Count >= 10, $"only {messages.Count} distinct kinds of error were reached");
    }

    [Fact]
    public void Mutation_is_deterministic_for_a_seed()
    {
        byte[] valid = Small();
        var layout = new GgufLayout(valid);
        for (int seed = 0; seed < 50; seed++)
        {
            var (a, da) = Mutate(valid, layout, new Random(seed));
            var (b, db) = Mutate(valid, layout, new Random(seed));
            Assert.Equal(da, db);
            Assert.Equal(a, b);
        }
        Assert.Equal(Small(), valid); // the writer output itself is deterministic too
    }
}
