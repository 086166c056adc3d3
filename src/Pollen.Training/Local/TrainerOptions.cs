namespace Pollen.Training.Local;

/// <summary>Settings of a local training run. Defaults suit the <c>dev</c> preset on 2 CPU cores.</summary>
public sealed record TrainerOptions
{
    /// <summary>Optimizer steps to reach (default 600).</summary>
    public int Steps { get; init; } = 600;

    /// <summary>Sequences per step (default 16).</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Peak learning rate (default 3e-3).</summary>
    public double LearningRate { get; init; } = 3e-3;

    /// <summary>Warmup steps; null means 5% of <see cref="Steps"/> (at least 1).</summary>
    public int? WarmupSteps { get; init; }

    /// <summary>Final learning rate as a fraction of the peak (default 0.1).</summary>
    public double MinLearningRateRatio { get; init; } = 0.1;

    /// <summary>Decoupled weight decay on matrices (default 0.1).</summary>
    public double WeightDecay { get; init; } = 0.1;

    /// <summary>AdamW β₁ (default 0.9).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>AdamW β₂ (default 0.95).</summary>
    public double Beta2 { get; init; } = 0.95;

    /// <summary>Global gradient-norm clip (default 1.0; 0 disables).</summary>
    public double GradientClip { get; init; } = 1.0;

    /// <summary>Evaluate validation loss every this many steps and at the end (default 100).</summary>
    public int EvalEvery { get; init; } = 100;

    /// <summary>Validation batches per evaluation; null evaluates the whole split (default 16).</summary>
    public int? EvalBatches { get; init; } = 16;

    /// <summary>Write a checkpoint every this many steps and at the end (default 200; 0 only at the end).</summary>
    public int CheckpointEvery { get; init; } = 200;

    /// <summary>Seed for weights and data order (default 0).</summary>
    public int Seed { get; init; }

    /// <summary>Effective warmup length.</summary>
    public int EffectiveWarmup => WarmupSteps ?? Math.Max(1, Steps / 20);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        Require(Steps > 0, "--steps", $"must be positive (got {Steps})");
        Require(BatchSize > 0, "--batch-size", $"must be positive (got {BatchSize})");
        Require(LearningRate > 0 && double.IsFinite(LearningRate), "--lr", $"must be positive (got {LearningRate})");
        Require(EffectiveWarmup >= 0, "warmup", "must be ≥ 0");
        Require(MinLearningRateRatio is >= 0 and <= 1, "min lr ratio", "must be in [0, 1]");
        Require(WeightDecay >= 0, "weight decay", "must be ≥ 0");
        Require(GradientClip >= 0, "gradient clip", "must be ≥ 0");
        Require(EvalEvery > 0, "eval every", "must be positive");
        Require(CheckpointEvery >= 0, "checkpoint every", "must be ≥ 0");
    }

    private static void Require(bool ok, string option, string message)
    {
        if (!ok)
        {
            throw new ArgumentException($"{option} {message}");
        }
    }
}
