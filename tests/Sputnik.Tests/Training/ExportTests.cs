using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Training;
using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Training;

public class ExportTests
{
    [Fact]
    public void ExportedGgufGivesTheTrainingForwardLogits()
    {
        var c = TrainConfig.Preset("micro", R1Format.Tokenizer.VocabSize);
        var m = new TransformerModel(c, seed: 9);
        var rng = new Random(2);
        // larger-than-init weights so every term matters in the comparison
        for (int i = 0; i < m.P.Count; i++) m.P.Data[i] += (float)(rng.NextDouble() - 0.5) * 0.2f;
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-export-{Environment.ProcessId}.gguf");
        try
        {
            GgufExport.Write(m, path);
            var tokens = R1Format.EncodePrompt("What is 347 * 28?");
            m.Forward(tokens, new int[tokens.Length].Select(_ => -1).ToArray(), 1, tokens.Length);
            var train = m.Logits.ToArray();
            using var lm = ModelLoader.Load(GgufFile.Open(path), threads: 1);
            var state = lm.CreateState(64, KvCacheType.F32); // exact comparison: the default F16 cache rounds K/V
            for (int t = 0; t < tokens.Length; t++)
            {
                var logits = lm.Forward(state, tokens.AsSpan(t, 1));
                for (int v = 0; v < c.VocabSize; v++)
                    Assert.True(Math.Abs(logits[v] - train[t * c.VocabSize + v]) < 1e-4f, $"pos {t} token {v}: {logits[v]} vs {train[t * c.VocabSize + v]}");
            }
            var back = GgufExport.Read(path);
            Assert.Equal(m.P.Data, back.P.Data);
            Assert.Equal(c, back.Config);
        }
        finally { File.Delete(path); }
    }
}
