using Pollen.Model.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative;

/// <summary>
/// DiLoCo's outer optimizer (Douillard et al., 2023): SGD with Nesterov momentum applied to the
/// averaged pseudo-gradient Δ = θ_round_start − θ_after_local_steps, on the flat parameter vector.
/// <c>v ← μ·v + Δ; θ ← θ_start − η·(Δ + μ·v)</c>. Every peer applies the same Δ to the same θ_start with
/// the same state, so all peers end a round with bit-identical parameters.
/// Defaults are the paper's: η = 0.7, μ = 0.9.
/// </summary>
public sealed class OuterOptimizer : IDisposable
{
    private Tensor? _momentum;

    /// <summary>Creates the optimizer.</summary>
    public OuterOptimizer(double learningRate = 0.7, double momentum = 0.9)
    {
        if (!(learningRate > 0) || !(momentum is >= 0 and < 1))
        {
            throw new ArgumentException($"outer learning rate must be > 0 and momentum in [0, 1) (got {learningRate}, {momentum})");
        }
        LearningRate = learningRate;
        Momentum = momentum;
    }

    /// <summary>η.</summary>
    public double LearningRate { get; }

    /// <summary>μ.</summary>
    public double Momentum { get; }

    /// <summary>Outer steps taken.</summary>
    public long StepCount { get; private set; }

    /// <summary>The momentum buffer (flat, float32), or null before the first step; for state transfer.</summary>
    public Tensor? MomentumBuffer => _momentum;

    /// <summary>Returns the new parameters θ_start − η·(Δ + μ·v) (a new tensor owned by the caller) and updates v.</summary>
    public Tensor Step(Tensor start, Tensor delta)
    {
        if (start.numel() != delta.numel())
        {
            throw new ArgumentException($"Δ has {delta.numel()} elements but the parameters {start.numel()}", nameof(delta));
        }
        using var noGrad = no_grad();
        _momentum ??= zeros_like(delta, dtype: float32).DetachFromDisposeScope();
        // explicit scalars, alive to the end: a temporary one may be finalized while a native op reads it
        using var momentum = Momentum.ToScalar();
        using var learningRate = LearningRate.ToScalar();
        _momentum.mul_(momentum).add_(delta, TensorMath.One);
        StepCount++;
        using var scope = NewDisposeScope();
        var update = delta.Plus(_momentum.mul(momentum));
        return (start - update.mul(learningRate)).MoveToOuterDisposeScope();
    }

    /// <summary>Restores state received from a peer (validated shape).</summary>
    public void LoadState(Tensor momentum, long stepCount, long expectedLength)
    {
        if (momentum.numel() != expectedLength || momentum.dim() != 1)
        {
            throw new InvalidDataException($"outer momentum of shape [{string.Join(", ", momentum.shape)}] does not fit {expectedLength} parameters");
        }
        _momentum?.Dispose();
        _momentum = momentum.to(float32).clone().DetachFromDisposeScope();
        StepCount = stepCount;
    }

    /// <inheritdoc/>
    public void Dispose() => _momentum?.Dispose();
}
