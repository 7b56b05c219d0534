using Sputnik.Inference;
using Sputnik.Models;

namespace Sputnik.Server.Scheduling;

/// <summary>
/// One of the --parallel sequences: its own KV cache and the token history that cache holds, kept after a job
/// ends so the next request that shares a prefix reuses it (the prompt cache).
/// </summary>
internal sealed class Slot(int id, InferenceState state)
{
    public int Id { get; } = id;
    public InferenceState State { get; } = state;
    /// <summary>The tokens whose keys and values are in <see cref="State"/> (prompt + generated).</summary>
    public List<int> History { get; } = [];
    public long LastUsed { get; set; }
    public ActiveSequence? Active { get; set; }
    public bool IsIdle => Active == null;

    /// <summary>
    /// Leading tokens of <paramref name="prompt"/> already cached here (and restorable: a recurrent state resumes only at
    /// a checkpoint); none when the cache was computed under other LoRA adapters than <paramref name="adapters"/>.
    /// </summary>
    public int SharedPrefix(int[] prompt, LoraSet adapters)
    {
        if (State.Adapters.Key != adapters.Key) return 0;
        int n = Math.Min(Math.Min(History.Count, State.Position), prompt.Length);
        int i = 0;
        while (i < n && History[i] == prompt[i]) i++;
        return State.Restorable(i);
    }

    public void Reset()
    {
        History.Clear();
        State.Truncate(0);
    }
}

/// <summary>
/// A job bound to a slot, with the generator's enumerator that advances it one token per step and the handoff
/// through which a batched executor feeds its decode token.
/// </summary>
internal sealed class ActiveSequence(InferenceJob job, Slot slot, IEnumerator<GeneratedToken> steps, DecodeHandoff handoff)
{
    public DecodeHandoff Handoff { get; } = handoff;
    public InferenceJob Job { get; } = job;
    public Slot Slot { get; } = slot;
    public IEnumerator<GeneratedToken> Steps { get; } = steps;
}
