using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tools;
using Sputnik.Training;
using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// One description per architecture: the registry feeds the loader, `synth` and `convert`, and each family's
/// hyper-parameter record reads back exactly what it wrote, whoever wrote it (synth, the training export).
/// </summary>
public class ArchitectureRegistryTests
{
    [Fact]
    public void Every_registered_architecture_is_loadable_convertible_and_listed()
    {
        Assert.Equal(ModelLoader.All.Select(a => a.Name), ModelLoader.SupportedArchitectures);
        Assert.Equal(ModelLoader.All.Count, ModelLoader.All.Select(a => a.Name).Distinct().Count());
        foreach (var arch in ModelLoader.All)
        {
            Assert.Same(arch, ModelLoader.Find(arch.Name));
            // Hugging Face names map to it only with the conversion that reads them.
            Assert.Equal(arch.HfArchitectures.Count > 0, arch.Convert != null);
            foreach (string hf in arch.HfArchitectures) Assert.Equal(arch.Name, HfConverter.Architectures[hf]);
            // An architecture with synth presets must say how to write them.
            if (arch.SynthPresets.Count > 0) Assert.True(arch.Synth != null && arch.Tensors != null, arch.Name);
            Assert.All(arch.SynthPresets, p => Assert.Equal(arch.Name, p.Arch));
            Assert.All(arch.OwnSynth?.Presets ?? [], p => Assert.Equal(arch.Name, p.Arch));
        }
        // One namespace of preset names, whichever writer makes the file.
        var names = SyntheticModel.PresetNames.ToArray();
        Assert.Equal(names.Length, names.Distinct(StringComparer.OrdinalIgnoreCase).Count());
        Assert.Contains("deepseek2-tiny", names);
        Assert.Contains("deepseek-v2-lite", names);
        Assert.Null(ModelLoader.Find("gpt-unknown"));
    }

    public static TheoryData<string> TinyPresets() =>
        new(SyntheticModel.Presets.Where(p => p.Name.EndsWith("-tiny", StringComparison.Ordinal)).Select(p => p.Name));

    [Theory]
    [MemberData(nameof(TinyPresets))]
    public void A_synth_file_reads_back_as_its_preset_config(string preset)
    {
        var p = SyntheticModel.FindPreset(preset);
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-registry-{preset}-{Environment.ProcessId}.gguf");
        try
        {
            SyntheticModel.Write(path, new SynthOptions { Preset = p, FileType = FileType.AllF32, Seed = 5, Threads = 2 });
            using var lm = ModelLoader.Load(GgufFile.Open(path), threads: 1);
            // Record equality: every hyper-parameter WriteKeys wrote is what the architecture's reader returns.
            Assert.Equal(p.Config, lm.Config);
            // ...and the file holds exactly the tensors the architecture declares.
            var declared = ModelLoader.Find(p.Arch)!.Tensors!(p).ToDictionary(t => t.Name, t => t.Dims);
            Assert.Equal(declared.Keys.Order(), lm.File.Tensors.Select(t => t.Name).Order());
            Assert.All(lm.File.Tensors, t => Assert.Equal(declared[t.Name], t.Dims));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void An_own_writer_preset_reads_back_as_its_config()
    {
        // deepseek2's presets are DeepSeek2Config shapes written by its own generator; the file reads back as the
        // preset's record, less the vocabulary, which the synthetic byte-level tokenizer sizes.
        var found = SyntheticModel.FindOwnPreset("DeepSeek2-Tiny");
        Assert.NotNull(found);
        var (preset, write) = found.Value;
        Assert.Equal("deepseek2", preset.Arch);
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-registry-ds2-{Environment.ProcessId}.gguf");
        try
        {
            write(path, preset, FileType.AllF32, 3, 2);
            using var f = GgufFile.Open(path);
            var read = DeepSeek2Config.FromGguf(f);
            Assert.Equal((DeepSeek2Config)preset.Config with { VocabSize = read.VocabSize }, read);
            Assert.True(read.VocabSize >= preset.Config.VocabSize);
            var declared = DeepSeek2Synth.Tensors(read).ToDictionary(t => t.Name, t => t.Dims);
            Assert.Equal(declared.Keys.Order(), f.Tensors.Select(t => t.Name).Order());
        }
        finally
        {
            File.Delete(path);
        }
        Assert.Null(SyntheticModel.FindOwnPreset("qwen2-tiny"));
    }

    [Fact]
    public void A_computed_tensor_is_written_from_the_architectures_function()
    {
        // llama-tiny with Llama 3.1's rope_freqs: pair 0 (short wavelength) keeps its frequency, the last pair
        // (wavelength far above the 8,192-token original context) is divided by the whole factor.
        var p = SyntheticModel.FindPreset("llama-tiny") with { Name = "llama3-rope-tiny", Llama3RopeFactor = 8f };
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-registry-rope-{Environment.ProcessId}.gguf");
        try
        {
            SyntheticModel.Write(path, new SynthOptions { Preset = p, FileType = FileType.AllF32, Seed = 5, Threads = 2 });
            using var f = GgufFile.Open(path);
            var info = f.GetTensor(TensorNames.Weight(TensorNames.RopeFreqs));
            Assert.Equal([(long)p.Config.HeadDim / 2], info.Dims);
            var factors = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(f.GetData(info)).ToArray();
            Assert.Equal(1f, factors[0]);
            Assert.Equal(8f, factors[^1]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("micro")]
    [InlineData("micro-ds")]
    public void The_training_export_reads_back_as_the_same_record(string preset)
    {
        var c = TrainConfig.Preset(preset, R1Format.Tokenizer.VocabSize);
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-registry-{preset}-{Environment.ProcessId}.gguf");
        try
        {
            GgufExport.Write(new TransformerModel(c, seed: 2), path);
            Assert.Equal(c, GgufExport.Read(path).Config);
            using var f = GgufFile.Open(path);
            Assert.Equal(c.Architecture, f.Architecture);
            Assert.True(f.TryGetInt64(GgufKeys.Of(c.Architecture, GgufKeys.ContextLength), out long ctx) && ctx == c.ContextLength);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
