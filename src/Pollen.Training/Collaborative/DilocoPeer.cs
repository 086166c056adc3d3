using Pollen.Model.Llama;
using Pollen.Training.Data;
using Pollen.Training.Local;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative;

/// <summary>A DiLoCo peer's shareable state: round, outer steps, θ_start and outer momentum (flat float32; owned, dispose it).</summary>
public sealed record DilocoState(long Round, long OuterSteps, Tensor Parameters, Tensor? Momentum, string Layout) : IDisposable
{
    /// <inheritdoc/>
    public void Dispose()
    {
        Parameters.Dispose();
        Momentum?.Dispose();
    }
}

/// <summary>Settings of collaborative (DiLoCo) training.</summary>
public sealed record DilocoOptions
{
    /// <summary>Local AdamW steps per round, H (default 50).</summary>
    public int InnerSteps { get; init; } = 50;

    /// <summary>Outer Nesterov learning rate (default 0.7).</summary>
    public double OuterLearningRate { get; init; } = 0.7;

    /// <summary>Outer Nesterov momentum (default 0.9).</summary>
    public double OuterMomentum { get; init; } = 0.9;

    /// <summary>How Δ travels (default f32).</summary>
    public DeltaCompression Compression { get; init; } = DeltaCompression.F32;

    /// <summary>How the round's parts are combined (default mean).</summary>
    public Aggregation Aggregation { get; init; } = Aggregation.Mean;
}

/// <summary>
/// One peer's side of DiLoCo (Douillard et al., 2023): keep θ_start, take H local AdamW steps on the
/// peer's own shard, hand out Δ = θ_start − θ, and when the round's averaged Δ comes back, set
/// θ = θ_start − outer step. The inner optimizer's state stays local across rounds, as in the paper;
/// the outer state is identical on every peer. How Δ reaches the others (all-reduce over the swarm, or
/// in-process for tests and benchmarks) is the caller's business.
/// </summary>
public sealed class DilocoPeer : IDisposable
{
    private readonly Trainer _inner;
    private readonly ParameterVector _parameters;
    private readonly OuterOptimizer _outer;
    private readonly Lock _state = new();
    private Tensor _start;

    /// <summary>Creates a peer training <paramref name="model"/> on <paramref name="shard"/>.</summary>
    public DilocoPeer(Transformer model, TokenDataset shard, TrainerOptions innerOptions, DilocoOptions options)
    {
        if (options.InnerSteps <= 0)
        {
            throw new ArgumentException($"--inner-steps must be positive (got {options.InnerSteps})");
        }
        Options = options;
        _inner = new Trainer(model, shard, innerOptions with { CheckpointEvery = 0 }, outDir: null);
        _parameters = new ParameterVector(model.named_parameters().Select(p => (p.name, p.parameter)));
        _outer = new OuterOptimizer(options.OuterLearningRate, options.OuterMomentum);
        _start = _parameters.Gather().DetachFromDisposeScope();
    }

    /// <summary>The settings.</summary>
    public DilocoOptions Options { get; }

    /// <summary>Rounds completed.</summary>
    public int Round { get; private set; }

    /// <summary>Inner steps taken so far (the inner schedule's clock).</summary>
    public long InnerStep => _inner.Step;

    /// <summary>Elements of Δ.</summary>
    public long Length => _parameters.Length;

    /// <summary>Tokens one inner step consumes.</summary>
    public long TokensPerStep => _inner.TokensPerStep;

    /// <summary>Hash of the parameter layout (names, shapes, order): peers average only with the same layout.</summary>
    public string LayoutHash => _parameters.LayoutHash;

    /// <summary>Hash of the current parameters (equal on peers in sync).</summary>
    public string ParameterHash => _parameters.ContentHash();

    /// <summary>Runs the round's H inner steps and returns Δ = θ_start − θ (flat float32, owned by the caller).</summary>
    public Tensor InnerRound(CancellationToken cancellationToken = default)
    {
        _inner.RunUntil(_inner.Step + Options.InnerSteps, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        using var scope = NewDisposeScope();
        return (_start - _parameters.Gather()).MoveToOuterDisposeScope();
    }

    /// <summary>Applies the round's combined Δ: θ = θ_start − η·Nesterov(Δ), which becomes the next θ_start.</summary>
    public void ApplyOuter(Tensor combinedDelta)
    {
        lock (_state)
        {
            var next = _outer.Step(_start, combinedDelta).DetachFromDisposeScope();
            _parameters.Scatter(next);
            _start.Dispose();
            _start = next;
            Round++;
        }
    }

    /// <summary>
    /// A copy of the state another peer needs to join at this peer's round: the parameters at the start
    /// of the round (θ_start), the outer momentum and the round count. Safe to call while inner steps run.
    /// </summary>
    public DilocoState SnapshotState()
    {
        lock (_state)
        {
            using var noGrad = no_grad();
            return new DilocoState(Round, _outer.StepCount, _start.clone().DetachFromDisposeScope(), _outer.MomentumBuffer?.clone().DetachFromDisposeScope(), LayoutHash);
        }
    }

    /// <summary>
    /// Takes over a state received from a peer (checked by the caller): parameters, outer momentum and
    /// round; the inner schedule's clock moves to that round's first step, so a peer that joins late
    /// trains at the learning rate the others use instead of starting its warm-up again.
    /// </summary>
    public void LoadState(DilocoState state)
    {
        if (state.Layout != LayoutHash || state.Parameters.numel() != Length)
        {
            throw new InvalidDataException($"the received state has layout {state.Layout} with {state.Parameters.numel()} values; this model has {LayoutHash} with {Length}");
        }
        lock (_state)
        {
            _parameters.Scatter(state.Parameters);
            _start.Dispose();
            _start = state.Parameters.to(float32).clone().DetachFromDisposeScope();
            if (state.Momentum is { } momentum)
            {
                _outer.LoadState(momentum, state.OuterSteps, Length);
            }
            Round = (int)state.Round;
            _inner.AdvanceTo((long)Round * Options.InnerSteps);
        }
    }

    /// <summary>Validation loss of the current parameters.</summary>
    public double Evaluate() => _inner.Evaluate();

    /// <inheritdoc/>
    public void Dispose()
    {
        _start.Dispose();
        _outer.Dispose();
        _inner.Dispose();
    }
}
