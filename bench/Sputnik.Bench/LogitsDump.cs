using System.Text.Json;
using Sputnik;
using Sputnik.Models;

/// <summary>
/// Sputnik's logits along llama.cpp's greedy path, for bench/compare-logits.py: reads the JSON object
/// bench/llamacpp-greedy.cpp printed (prompt_tokens, tokens), prefills the same prompt, then feeds llama.cpp's
/// tokens one by one (teacher forcing, so both engines see the same context at every step however their choices
/// part) and writes each step's full logits (n_vocab floats, native byte order): one step after the prompt and one
/// after each token, as the greedy driver's GREEDY_LOGITS file holds them.
///
///   logits MODEL.gguf LLAMA.json OUT.bin [ctx] [ctk] [ctv] [threads]
/// </summary>
internal static class LogitsDump
{
    public static void Run(string[] args)
    {
        if (args.Length < 3) throw new ArgumentException("usage: logits MODEL.gguf LLAMA.json OUT.bin [ctx] [ctk] [ctv] [threads]");
        using var doc = JsonDocument.Parse(File.ReadAllText(args[1]));
        int[] prompt = doc.RootElement.GetProperty("prompt_tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] tokens = doc.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int ctx = args.Length > 3 ? int.Parse(args[3]) : 0;
        var ctk = args.Length > 4 ? Enum.Parse<KvCacheType>(args[4], ignoreCase: true) : KvCacheType.F16;
        var ctv = args.Length > 5 ? Enum.Parse<KvCacheType>(args[5], ignoreCase: true) : ctk;
        int threads = args.Length > 6 ? int.Parse(args[6]) : 2;
        using var m = SputnikModel.Load(args[0], new ModelOptions { Threads = threads, ContextLength = ctx, KvType = ctk, KvTypeV = ctv });
        var state = m.CreateState();
        using var output = File.Create(args[2]);
        var one = new int[1];
        // SPUTNIK_PREFILL=1: the prompt one token at a time (the decode path), to tell batched prefill apart.
        if (Environment.GetEnvironmentVariable("SPUTNIK_PREFILL") == "1")
            for (int i = 0; i < prompt.Length - 1; i++)
            {
                one[0] = prompt[i];
                m.Model.Forward(state, one);
            }
        Write(output, m.Model.Forward(state, Environment.GetEnvironmentVariable("SPUTNIK_PREFILL") == "1" ? prompt[^1..] : prompt));
        foreach (int t in tokens)
        {
            one[0] = t;
            Write(output, m.Model.Forward(state, one));
        }
    }

    private static void Write(Stream output, ReadOnlySpan<float> logits) =>
        output.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits));
}
