using System.Threading.Channels;
using Sputnik.Inference;
using Sputnik.Server.Api;

namespace Sputnik.Server.Scheduling;

/// <summary>One event of a running job: a token (with its logprobs when asked), the end, or a failure.</summary>
internal readonly record struct JobEvent(GeneratedToken Token, TokenLogprob? Logprob, bool Done, Exception? Error);

/// <summary>A generation request waiting for, or running in, a slot. Events flow out through <see cref="Events"/>.</summary>
internal sealed class InferenceJob
{
    public InferenceJob(int[] prompt, GenerationOptions options, CancellationToken cancellation, int topLogprobs = -1)
    {
        Prompt = prompt;
        Options = options;
        Cancellation = cancellation;
        TopLogprobs = topLogprobs;
    }

    public int[] Prompt { get; }
    /// <summary>The LoRA adapters and scales this request runs with (the server's global ones unless it named its own).</summary>
    public Sputnik.Models.LoraSet Adapters { get; init; } = Sputnik.Models.LoraSet.None;
    public GenerationOptions Options { get; }
    public CancellationToken Cancellation { get; }
    /// <summary>-1: no logprobs; 0..20: the sampled token's logprob plus that many alternatives.</summary>
    public int TopLogprobs { get; }
    public GenerationStats Stats { get; } = new();
    /// <summary>Process CPU time spent stepping this job (the estimate behind energy and cost).</summary>
    public double CpuSeconds { get; internal set; }
    public int SlotId { get; internal set; } = -1;
    public long EnqueuedTicks { get; } = Environment.TickCount64;
    public double QueueMs { get; internal set; }

    public Channel<JobEvent> Events { get; } = Channel.CreateUnbounded<JobEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the job got a slot (or ended without one).</summary>
    public Task Started => _started.Task;

    internal void MarkStarted() => _started.TrySetResult();

    internal void Complete(Exception? error = null)
    {
        Events.Writer.TryWrite(new JobEvent(default, null, error == null, error));
        Events.Writer.TryComplete();
        _started.TrySetResult();
    }
}
