using Sputnik.Models;
using Sputnik.Tools;

namespace Sputnik.Tests.Server;

/// <summary>
/// A deepseek2-tiny GGUF (MLA + MoE, byte-level vocabulary, ChatML template) written once per test run, for the
/// server paths that differ by architecture (the latent prompt cache).
/// </summary>
internal static class TinyDeepSeek2File
{
    private static readonly Lazy<string> File = new(() =>
    {
        string path = System.IO.Path.Combine(Directory.CreateTempSubdirectory("sputnik-ds2-").FullName, "deepseek2-tiny.gguf");
        SyntheticModel.WriteDeepSeek2(path, "deepseek2-tiny", DeepSeek2Synth.Tiny, FileType.Q8_0, seed: 11);
        return path;
    });

    public static string Path => File.Value;
}
