using Sputnik.Models;

namespace Sputnik.Server.Scheduling;

/// <summary>
/// How one scheduler iteration advances every active sequence by one token. <see cref="BatchedStepExecutor"/> (the
/// default) feeds all pending decode tokens through one multi-sequence forward; <see cref="SequentialStepExecutor"/>
/// lets each sequence run its own forward, one after another.
/// </summary>
internal interface IStepExecutor
{
    /// <summary>Advances each sequence once; <paramref name="stepOne"/> does the per-sequence bookkeeping.</summary>
    void Step(IReadOnlyList<ActiveSequence> sequences, Action<ActiveSequence> stepOne);
}

/// <summary>Steps sequences one after another, each with its own forward pass.</summary>
internal sealed class SequentialStepExecutor : IStepExecutor
{
    public void Step(IReadOnlyList<ActiveSequence> sequences, Action<ActiveSequence> stepOne)
    {
        foreach (var s in sequences)
        {
            s.Handoff.Speculate = s.Speculates; // each runs its own forward anyway: proposals ride along
            stepOne(s);
        }
    }
}

/// <summary>
/// Continuous batching: every sequence suspended after a sample has its decode token fed first, all of them in one
/// <see cref="LanguageModel.ForwardBatch"/> (the weights are read once per step, not once per sequence); then each
/// sequence's step samples from its fresh logits. Sequences still to prefill (new requests) run their prompt, or
/// the next chunk of it, inside their own step. Sampling, stop strings, reasoning and usage stay in the generator, so output
/// is the same as stepping sequences one by one.
/// While at most <paramref name="speculativeSlots"/> sequences are active, those with a proposal source feed their
/// token with its proposals in a forward of their own instead (speculative decoding): one sequence's forward reads
/// all the weights, as the batch does, so checking proposals there is nearly free; with more sequences the batch
/// already shares the weight reads, and separate verification forwards would each read them again.
/// </summary>
internal sealed class BatchedStepExecutor(LanguageModel model, int speculativeSlots = 0) : IStepExecutor
{
    private readonly List<InferenceState> _states = [];
    private readonly List<ActiveSequence> _fed = [];
    private int[] _tokens = new int[8], _positions = new int[8];

    public void Step(IReadOnlyList<ActiveSequence> sequences, Action<ActiveSequence> stepOne)
    {
        _states.Clear();
        _fed.Clear();
        bool speculate = sequences.Count <= speculativeSlots;
        for (int i = 0; i < sequences.Count; i++) // index loops: no boxed enumerator per step
        {
            var s = sequences[i];
            s.Handoff.Speculate = speculate && s.Speculates;
            if (s.Handoff.Speculate) continue; // its step feeds the token with proposals
            // A cancelled sequence is finished by its step without resuming the generator: feeding it is waste.
            if (s.Handoff.PendingToken < 0 || s.Job.Cancellation.IsCancellationRequested) continue;
            if (_fed.Count == _tokens.Length)
            {
                Array.Resize(ref _tokens, _tokens.Length * 2);
                Array.Resize(ref _positions, _tokens.Length);
            }
            _tokens[_fed.Count] = s.Handoff.PendingToken;
            _positions[_fed.Count] = s.Slot.State.Position;
            _fed.Add(s);
            _states.Add(s.Slot.State);
        }
        if (_fed.Count > 0) FeedAll();
        for (int i = 0; i < sequences.Count; i++) stepOne(sequences[i]);
    }

    private void FeedAll()
    {
        var cpu0 = Environment.CpuUsage.TotalTime;
        try
        {
            model.ForwardBatch(_states, _tokens.AsSpan(0, _fed.Count));
            foreach (var s in _fed) s.Handoff.MarkFed();
        }
        catch (Exception)
        {
            // Sequences whose position did not advance feed their own token in their step, so a failure is reported
            // to the requests it concerns (DecoderModel commits positions only at the end; the default loop may have
            // fed some before failing, and those must not be fed twice).
            for (int i = 0; i < _fed.Count; i++)
                if (_fed[i].Slot.State.Position == _positions[i] + 1) _fed[i].Handoff.MarkFed();
        }
        finally
        {
            // Shared work, shared evenly among the requests that took part.
            double share = (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds / _fed.Count;
            foreach (var s in _fed) s.Job.CpuSeconds += share;
        }
    }
}
