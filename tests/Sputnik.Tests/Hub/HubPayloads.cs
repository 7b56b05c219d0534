using Sputnik.Gguf;
using Sputnik.Tools;

namespace Sputnik.Tests.Hub;

/// <summary>
/// Real GGUF bytes to serve from the stand-in hub: tiny qwen2 models written by Sputnik's own synth (a few MB, so a
/// download spans several chunks), and the same model cut into llama.cpp gguf-split shards.
/// </summary>
internal static class HubPayloads
{
    private static readonly Lazy<byte[]> TinyQ8 = new(() => Synth(FileType.Q8_0, 1));
    private static readonly Lazy<byte[]> TinyQ4 = new(() => Synth(FileType.Q4_K_M, 2));

    /// <summary>A qwen2-tiny model in Q8_0.</summary>
    public static byte[] Q8_0 => TinyQ8.Value;

    /// <summary>A different qwen2-tiny model in Q4_K_M.</summary>
    public static byte[] Q4_K_M => TinyQ4.Value;

    private static byte[] Synth(FileType type, ulong seed)
    {
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-hub-payload-{Guid.NewGuid():N}.gguf");
        try
        {
            SyntheticModel.Write(path, new SynthOptions { Preset = SyntheticModel.FindPreset("qwen2-tiny"), FileType = type, Seed = seed, Threads = 1 });
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// <paramref name="model"/> cut into <paramref name="count"/> shards as llama-gguf-split writes them: the first
    /// shard keeps all metadata, every shard carries split.no (0-based, u16), split.count (u16) and
    /// split.tensors.count (i32), and the tensors are dealt out in order.
    /// </summary>
    public static byte[][] Split(byte[] model, int count)
    {
        string src = Path.Combine(Path.GetTempPath(), $"sputnik-hub-split-{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(src, model);
        try
        {
            using var file = GgufFile.Open(src);
            var tensors = file.Tensors;
            var shards = new byte[count][];
            for (int k = 0; k < count; k++)
            {
                var writer = new GgufWriter();
                if (k == 0) writer.CopyMetadata(file);
                writer.Set("split.no", new GgufValue(GgufValueType.UInt16, (ushort)k));
                writer.Set("split.count", new GgufValue(GgufValueType.UInt16, (ushort)count));
                writer.Set("split.tensors.count", GgufValue.Of(tensors.Count));
                int from = tensors.Count * k / count, to = tensors.Count * (k + 1) / count;
                for (int i = from; i < to; i++)
                    writer.AddTensor(tensors[i].Name, tensors[i].Type, tensors[i].Dims, file.GetData(tensors[i]).ToArray());
                using var output = new MemoryStream();
                writer.Write(output);
                shards[k] = output.ToArray();
            }
            return shards;
        }
        finally
        {
            File.Delete(src);
        }
    }
}
