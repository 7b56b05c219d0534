using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tokenizers;

namespace Sputnik.Training;

/// <summary>One sampled completion: its tokens (EOS included when produced) and how many were thinking.</summary>
internal sealed record Rollout(int[] Prompt, int[] Completion, string Text, int ThinkTokens, bool Finished);

/// <summary>
/// Samples completions through Sputnik's inference path (ModelLoader → DecoderModel with its KV cache): one model
/// instance per worker thread, each single-threaded, so G×P independent sequences run in parallel without the
/// workers contending for one pool. With an adapter file every sequence runs with it at scale 1 (the path `--lora`
/// takes), so a LoRA policy samples over its base without a merged copy.
/// </summary>
internal sealed class RolloutEngine : IDisposable
{
    private readonly LanguageModel[] _models;
    private readonly Tokenizer _tok;
    private readonly int _thinkClose, _eos;
    private readonly Models.LoraSet _adapters = Models.LoraSet.None;

    public RolloutEngine(string ggufPath, int threads, string? adapterPath = null)
    {
        _models = Enumerable.Range(0, Math.Max(1, threads)).Select(_ => ModelLoader.Load(GgufFile.Open(ggufPath), threads: 1)).ToArray();
        if (adapterPath != null)
        {
            foreach (var m in _models) m.AttachAdapter(LoraAdapter.Load(adapterPath, m.File));
            _adapters = Models.LoraSet.Of([(0, 1f)]);
        }
        _tok = Tokenizer.Create(TokenizerData.FromGguf(_models[0].File));
        _thinkClose = _tok.FindToken("</think>") ?? -1;
        _eos = _tok.EosId;
    }

    public Tokenizer Tokenizer => _tok;

    /// <summary>The model's chat template (null when the file has none).</summary>
    public string? ChatTemplate => _models[0].File.GetStringOrNull(GgufKeys.ChatTemplate);

    /// <summary>The model's context length: prompt and completion together never exceed it.</summary>
    public int ContextLength => _models[0].Config.ContextLength;

    /// <summary>Samples one completion per prompt (temperature 0 = greedy). Deterministic for a seed regardless of threads.</summary>
    public Rollout[] Generate(IReadOnlyList<int[]> prompts, float temperature, int maxNew, int seed)
    {
        var results = new Rollout[prompts.Count];
        int next = -1;
        Parallel.For(0, _models.Length, new ParallelOptions { MaxDegreeOfParallelism = _models.Length }, w =>
        {
            var model = _models[w];
            var probs = new float[model.Config.VocabSize];
            var one = new int[1];
            for (int i = Interlocked.Increment(ref next); i < prompts.Count; i = Interlocked.Increment(ref next))
            {
                var rng = new Random(Seeds.Mix(seed, i));
                var prompt = prompts[i];
                int ctx = Math.Min(model.Config.ContextLength, prompt.Length + maxNew);
                var state = model.CreateState(ctx);
                state.Adapters = _adapters;
                var logits = model.Forward(state, prompt);
                var outTokens = new List<int>();
                int think = -1;
                bool finished = false;
                while (outTokens.Count < maxNew && prompt.Length + outTokens.Count < ctx)
                {
                    int tok = Sample(logits, probs, temperature, rng);
                    outTokens.Add(tok);
                    if (tok == _thinkClose && think < 0) think = outTokens.Count - 1;
                    if (tok == _eos) { finished = true; break; }
                    if (prompt.Length + outTokens.Count >= ctx) break;
                    one[0] = tok;
                    logits = model.Forward(state, one);
                }
                var ids = outTokens.ToArray();
                results[i] = new Rollout(prompt, ids, _tok.Decode(ids, renderSpecial: true), think < 0 ? ids.Length : think, finished);
            }
        });
        return results;
    }

    private static int Sample(ReadOnlySpan<float> logits, float[] probs, float temperature, Random rng)
    {
        if (temperature <= 0) return System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
        float max = System.Numerics.Tensors.TensorPrimitives.Max(logits);
        double sum = 0;
        for (int v = 0; v < logits.Length; v++) sum += probs[v] = MathF.Exp((logits[v] - max) / temperature);
        double u = rng.NextDouble() * sum;
        for (int v = 0; v < logits.Length; v++) { u -= probs[v]; if (u <= 0) return v; }
        return logits.Length - 1;
    }

    public void Dispose()
    {
        foreach (var m in _models) m.Dispose();
    }
}
