using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Training.Tasks;

namespace Sputnik.Training;

/// <summary>
/// What GRPO updates: every weight of a Sputnik model (<see cref="FullPolicy"/>), or a LoRA adapter over a frozen GGUF
/// base (<see cref="LoraPolicy"/>). <see cref="GrpoTrainer"/>'s loop is the same for both; a policy says how its
/// current weights are sampled, what the KL reference is, which parameters the optimiser owns, and what is written.
/// </summary>
internal abstract class GrpoPolicy : IDisposable
{
    /// <summary>The model whose forward/backward gives the policy's log-probabilities and gradients.</summary>
    public abstract TransformerModel Model { get; }

    /// <summary>The parameters AdamW updates (their gradients are clipped together).</summary>
    public abstract ParameterBuffer Trained { get; }

    /// <summary>The file the run leaves: grpo.gguf, or the adapter.</summary>
    public abstract string OutputPath { get; }

    /// <summary>An inference engine sampling the current weights (the caller disposes it before the update).</summary>
    public abstract RolloutEngine Rollouts(int threads);

    /// <summary>The KL reference's per-row losses (−log π_ref of the targets) of a packed batch, or null when there is
    /// none (β = 0). May overwrite <see cref="Model"/>'s activations: the caller runs the policy's forward again before backward.</summary>
    public abstract float[]? ReferenceLosses(int[] tokens, int[] targets, int b, int t);

    /// <summary>The step to continue from (0 for a new run), with parameters and optimiser state restored.</summary>
    public abstract int Resume(string checkpointPath, AdamW opt);

    public abstract void Save(string checkpointPath, int nextStep, AdamW opt);

    /// <summary>Zeroes every gradient the backward pass accumulates.</summary>
    public virtual void ZeroGrad() => Model.P.ZeroGrad();

    public abstract void Apply(AdamW opt, float lr);

    /// <summary>Writes <see cref="OutputPath"/> (and what goes with it) at the end of the run.</summary>
    public abstract void Finish();

    public virtual void Dispose() { }

    public static GrpoPolicy Create(GrpoOptions o) => o.LoraRank > 0 ? new LoraPolicy(o) : new FullPolicy(o);
}

/// <summary>Full-weight GRPO of a Sputnik model: each step exports the policy and samples it; β &gt; 0 loads a frozen copy as the reference.</summary>
internal sealed class FullPolicy : GrpoPolicy
{
    private readonly GrpoOptions _o;
    private readonly TransformerModel _model;
    private readonly TransformerModel? _reference;
    private string PolicyPath => Path.Combine(_o.OutDir, "policy.tmp.gguf");

    public FullPolicy(GrpoOptions o)
    {
        _o = o;
        _model = GgufExport.Read(o.Init);
        _reference = o.Beta > 0 ? GgufExport.Read(o.Init) : null;
        if (_reference != null)
        {
            _reference.Temperature = o.Temperature > 0 ? o.Temperature : 1f;
            _reference.MtpWeight = 0;
        }
    }

    public override TransformerModel Model => _model;
    public override ParameterBuffer Trained => _model.P;
    public override string OutputPath => Path.Combine(_o.OutDir, "grpo.gguf");

    public override RolloutEngine Rollouts(int threads)
    {
        GgufExport.Write(_model, PolicyPath);
        return new RolloutEngine(PolicyPath, threads);
    }

    public override float[]? ReferenceLosses(int[] tokens, int[] targets, int b, int t)
    {
        if (_reference == null) return null;
        _reference.Forward(tokens, targets, b, t);
        return _reference.Losses.ToArray();
    }

    public override int Resume(string checkpointPath, AdamW opt) =>
        File.Exists(checkpointPath) ? Checkpoint.Load(checkpointPath, _model.Config, _model.P, opt, out _) : 0;

    public override void Save(string checkpointPath, int nextStep, AdamW opt) => Checkpoint.Save(checkpointPath, _model.Config, nextStep, _model.P, opt);

    public override void Apply(AdamW opt, float lr)
    {
        opt.Update(_model.P.Data, _model.P.Grad, lr, _model.DecayMask);
        _model.UpdateRouterBias();
    }

    public override void Finish()
    {
        GgufExport.Write(_model, OutputPath);
        File.Delete(PolicyPath);
    }
}

/// <summary>
/// GRPO of a LoRA adapter over a frozen GGUF base (the LoRA SFT machinery: <see cref="LoraTrainer.Open"/>, its
/// checkpoint tag, adapter file and merged export). Rollouts run the base through the inference engine with the
/// current adapter attached (DIR/adapter.gguf, rewritten with every checkpoint); the KL reference is the same model at adapter scale 0, i.e. the base itself.
/// </summary>
internal sealed class LoraPolicy : GrpoPolicy
{
    private readonly GrpoOptions _o;
    private readonly TransformerModel _model;
    private readonly LoraSet _lora;
    private readonly GgufFile _file;
    private readonly string _arch, _tag;

    public LoraPolicy(GrpoOptions o)
    {
        _o = o;
        using (var f = GgufFile.Open(o.Init))
            if (f.GetStringOrNull(GgufKeys.ChatTemplate) != R1Format.ChatTemplate || f.GetStringOrNull(GgufKeys.TokenizerModel) != "llama")
                throw new GgufFormatException($"{o.Init}: train grpo poses its tasks in the R1 format of Sputnik's models (their chat template and tokenizer), which this model does not have; adapt other models with train sft --lora-rank --data");
        // No cut of the context: rollouts may be as long as the base's context allows, and each is trained on whole.
        (_model, _lora, _file) = LoraTrainer.Open(o.Init, o.LoraRank, o.LoraAlpha, o.LoraTargets, int.MaxValue, o.Seed);
        _arch = _file.Architecture!;
        _tag = LoraTrainer.Tag(_arch, _lora);
    }

    public override TransformerModel Model => _model;
    public override ParameterBuffer Trained => _lora.P;
    public override string OutputPath => Path.Combine(_o.OutDir, "adapter.gguf");
    public string MergedPath => Path.Combine(_o.OutDir, "merged.gguf");
    public LoraSet Lora => _lora;

    public override RolloutEngine Rollouts(int threads)
    {
        _lora.Write(OutputPath, _arch);
        return new RolloutEngine(_o.Init, threads, OutputPath);
    }

    public override float[]? ReferenceLosses(int[] tokens, int[] targets, int b, int t)
    {
        if (_o.Beta <= 0) return null;
        _lora.SetScale(0);
        try
        {
            _model.Forward(tokens, targets, b, t);
            return _model.Losses.ToArray();
        }
        finally { _lora.SetScale(1); }
    }

    public override int Resume(string checkpointPath, AdamW opt) => LoraTrainer.Resume(checkpointPath, _tag, _model, _lora, opt);

    public override void Save(string checkpointPath, int nextStep, AdamW opt)
    {
        Checkpoint.Save(checkpointPath, _model.Config, nextStep, _lora.P, opt, _tag);
        _lora.Write(OutputPath, _arch);
    }

    public override void ZeroGrad()
    {
        _lora.P.ZeroGrad();
        _model.P.ZeroGrad(); // the base's norms: their gradients are computed, never applied
    }

    public override void Apply(AdamW opt, float lr) => opt.Update(_lora.P.Data, _lora.P.Grad, lr);

    public override void Finish()
    {
        _lora.Write(OutputPath, _arch);
        if (LoraTrainer.IsSputnikModel(_o.Init)) LoraTrainer.WriteMerged(_o.Init, _lora, MergedPath);
    }

    public override void Dispose() => _file.Dispose();
}
