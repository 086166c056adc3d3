using Pollen.Model.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pollen.Training.Optim;

/// <summary>
/// AdamW (Loshchilov and Hutter, 2019) over named parameters, with its state exposed as named tensors
/// (<c>exp_avg.{name}</c>, <c>exp_avg_sq.{name}</c>) so it can be checkpointed in safetensors and, later,
/// sent to a peer. Weight decay applies to matrices only (not to norms, biases or scalars).
/// All updates are in place and run under <c>no_grad</c>.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly (string Name, Parameter Param, Tensor ExpAvg, Tensor ExpAvgSq, bool Decay)[] _params;

    /// <summary>Creates the optimizer for <paramref name="parameters"/>.</summary>
    public AdamW(IEnumerable<(string Name, Parameter Param)> parameters, double beta1 = 0.9, double beta2 = 0.95, double eps = 1e-8, double weightDecay = 0.1)
    {
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
        _params = [.. parameters.Select(p => (p.Name, p.Param,
            zeros_like(p.Param).DetachFromDisposeScope(), zeros_like(p.Param).DetachFromDisposeScope(), p.Param.dim() >= 2))];
    }

    /// <summary>β₁ (default 0.9).</summary>
    public double Beta1 { get; }

    /// <summary>β₂ (default 0.95).</summary>
    public double Beta2 { get; }

    /// <summary>ε (default 1e-8).</summary>
    public double Eps { get; }

    /// <summary>Decoupled weight decay (default 0.1).</summary>
    public double WeightDecay { get; }

    /// <summary>Updates taken so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>The parameters, in order.</summary>
    public IEnumerable<Parameter> Parameters => _params.Select(p => p.Param);

    /// <summary>Clears every gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in _params)
        {
            p.Param.grad?.zero_();
        }
    }

    /// <summary>Applies one update with learning rate <paramref name="lr"/>; parameters without a gradient are skipped.</summary>
    public void Step(double lr)
    {
        StepCount++;
        var bias1 = 1 - Math.Pow(Beta1, StepCount);
        var bias2 = 1 - Math.Pow(Beta2, StepCount);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // explicit scalars, alive until the end of the step: a temporary one may be finalized while a native op reads it
        using var keep = (1 - (lr * WeightDecay)).ToScalar();
        using var beta1 = Beta1.ToScalar();
        using var rest1 = (1 - Beta1).ToScalar();
        using var beta2 = Beta2.ToScalar();
        using var rest2 = (1 - Beta2).ToScalar();
        using var correction2 = bias2.ToScalar();
        using var eps = Eps.ToScalar();
        using var stepSize = (-lr / bias1).ToScalar();
        foreach (var (_, param, m, v, decay) in _params)
        {
            var grad = param.grad;
            if (grad is null)
            {
                continue;
            }
            if (decay && WeightDecay > 0)
            {
                param.mul_(keep);
            }
            m.mul_(beta1).add_(grad, alpha: rest1);
            v.mul_(beta2).addcmul_(grad, grad, value: rest2);
            var denom = v.div(correction2).sqrt_().add_(eps, TensorMath.One);
            param.addcdiv_(m, denom, value: stepSize);
        }
    }

    /// <summary>The state as named tensors (views of the live buffers; copy before changing them).</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> StateTensors()
    {
        foreach (var p in _params)
        {
            yield return new($"exp_avg.{p.Name}", p.ExpAvg);
            yield return new($"exp_avg_sq.{p.Name}", p.ExpAvgSq);
        }
    }

    /// <summary>Restores the state saved by <see cref="StateTensors"/> and the step count.</summary>
    /// <exception cref="InvalidDataException">A tensor is missing or has the wrong shape.</exception>
    public void LoadState(Func<string, Tensor?> read, long stepCount)
    {
        using var noGrad = no_grad();
        foreach (var p in _params)
        {
            foreach (var (key, target) in new[] { ($"exp_avg.{p.Name}", p.ExpAvg), ($"exp_avg_sq.{p.Name}", p.ExpAvgSq) })
            {
                using var value = read(key) ?? throw new InvalidDataException($"optimizer state has no tensor '{key}'");
                if (!value.shape.SequenceEqual(target.shape))
                {
                    throw new InvalidDataException($"optimizer state '{key}' has shape [{string.Join(", ", value.shape)}], expected [{string.Join(", ", target.shape)}]");
                }
                target.copy_(value);
            }
        }
        StepCount = stepCount;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var p in _params)
        {
            p.ExpAvg.Dispose();
            p.ExpAvgSq.Dispose();
        }
    }
}
