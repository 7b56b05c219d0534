namespace Sputnik.Server.Scheduling;

/// <summary>
/// How one scheduler iteration advances every active sequence by one token. This is the seam for true
/// continuous batching: <see cref="SequentialStepExecutor"/> steps the sequences one after another because
/// <c>LanguageModel</c> only has a per-sequence <c>Forward</c> today. A batched executor would split each
/// sequence's step into sample → gather the next tokens of all sequences → one multi-sequence forward (weights read
/// once per step) → scatter the logits back, and plug in here without touching the scheduler or the HTTP layer.
/// </summary>
public interface IStepExecutor
{
    /// <summary>Advances each sequence once; <paramref name="stepOne"/> does the per-sequence bookkeeping.</summary>
    void Step(IReadOnlyList<ActiveSequence> sequences, Action<ActiveSequence> stepOne);
}

/// <summary>Steps sequences one after another (today's model API).</summary>
public sealed class SequentialStepExecutor : IStepExecutor
{
    public void Step(IReadOnlyList<ActiveSequence> sequences, Action<ActiveSequence> stepOne)
    {
        foreach (var s in sequences) stepOne(s);
    }
}
