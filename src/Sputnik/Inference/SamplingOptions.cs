namespace Sputnik.Inference;

/// <summary>How the next token is chosen. Defaults follow llama.cpp's CLI.</summary>
public sealed record SamplingOptions
{
    /// <summary>0 (or below) means greedy: always the most likely token.</summary>
    public float Temperature { get; init; } = 0.8f;
    /// <summary>Keep only the K most likely tokens; 0 disables.</summary>
    public int TopK { get; init; } = 40;
    /// <summary>Keep the smallest set whose probability reaches P; 1 disables.</summary>
    public float TopP { get; init; } = 0.95f;
    /// <summary>Drop tokens less likely than MinP × the top token's probability; 0 disables.</summary>
    public float MinP { get; init; } = 0.05f;
    /// <summary>Divides positive logits (multiplies negative ones) of recently seen tokens; 1 disables.</summary>
    public float RepeatPenalty { get; init; } = 1.0f;
    /// <summary>Subtracted once from the logit of every token seen in the window (OpenAI's presence_penalty).</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Subtracted per occurrence in the window (OpenAI's frequency_penalty).</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>How many recent tokens the penalties look at; -1 means the whole sequence.</summary>
    public int PenaltyLastN { get; init; } = 64;
    /// <summary>Seed for reproducible sampling; null picks a random one.</summary>
    public ulong? Seed { get; init; }

    /// <summary>Always the most likely token (temperature 0).</summary>
    public static SamplingOptions Greedy { get; } = new() { Temperature = 0 };

    /// <summary>True when the temperature is 0 or below.</summary>
    public bool IsGreedy => Temperature <= 0;

    /// <summary>Throws ArgumentException naming the bad field.</summary>
    public void Validate()
    {
        if (float.IsNaN(Temperature) || Temperature > 100) throw new ArgumentException($"temperature {Temperature} is out of range (0 to 100)");
        if (TopK < 0) throw new ArgumentException($"top_k {TopK} must be 0 (off) or positive");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top_p {TopP} must be in (0, 1]");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentException($"min_p {MinP} must be in [0, 1]");
        if (!(RepeatPenalty > 0) || RepeatPenalty > 100) throw new ArgumentException($"repeat_penalty {RepeatPenalty} must be positive");
        if (Math.Abs(PresencePenalty) > 2 || float.IsNaN(PresencePenalty)) throw new ArgumentException($"presence_penalty {PresencePenalty} must be in [-2, 2]");
        if (Math.Abs(FrequencyPenalty) > 2 || float.IsNaN(FrequencyPenalty)) throw new ArgumentException($"frequency_penalty {FrequencyPenalty} must be in [-2, 2]");
    }
}
