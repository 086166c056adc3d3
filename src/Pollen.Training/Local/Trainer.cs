using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pollen.Model.Checkpoints;
using Pollen.Model.Llama;
using Pollen.Model.Runtime;
using Pollen.Training.Data;
using Pollen.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Training.Local;

/// <summary>
/// Trains a <see cref="Transformer"/> on one machine: AdamW, warmup + cosine schedule, gradient
/// clipping, periodic validation, checkpoints with optimizer state, metrics as JSON lines.
/// A run is a pure function of (config, data, options, seed, thread count): the batch of step s is
/// fixed by the dataset, so a resumed run continues exactly where the checkpoint left it.
/// </summary>
public sealed class Trainer : IDisposable
{
    /// <summary>Optimizer state file in a training directory.</summary>
    public const string OptimizerFile = "optimizer.safetensors";

    /// <summary>Trainer state file (step, options) in a training directory; written last, it marks a complete checkpoint.</summary>
    public const string StateFile = "trainer_state.json";

    /// <summary>Metrics log (one JSON object per line) in a training directory.</summary>
    public const string MetricsFile = "metrics.jsonl";

    private const string StepKey = "pollen_step";

    private readonly Transformer _model;
    private readonly TokenDataset _data;
    private readonly TrainerOptions _options;
    private readonly string? _outDir;
    private readonly AdamW _optimizer;
    private readonly LearningRateSchedule _schedule;
    private readonly Queue<double> _recentLosses = new();
    private double? _lastValLoss;

    /// <summary>Creates a trainer; <paramref name="outDir"/> (optional) receives checkpoints and metrics.</summary>
    public Trainer(Transformer model, TokenDataset data, TrainerOptions options, string? outDir)
    {
        options.Validate();
        if (data.SeqLen > model.Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"--seq-len {data.SeqLen} exceeds the model's context of {model.Config.MaxPositionEmbeddings}");
        }
        if (data.VocabSize > model.Config.VocabSize)
        {
            throw new ArgumentException($"the tokenizer has {data.VocabSize} ids but the model only {model.Config.VocabSize}");
        }
        _model = model;
        _data = data;
        _options = options;
        _outDir = outDir;
        _optimizer = new AdamW(model.named_parameters().Select(p => (p.name, p.parameter)), options.Beta1, options.Beta2, weightDecay: options.WeightDecay);
        _schedule = new LearningRateSchedule(options.LearningRate, options.EffectiveWarmup, options.Steps, options.MinLearningRateRatio);
    }

    /// <summary>Steps done (after a resume, counted from the start of the run).</summary>
    public long Step { get; private set; }

    /// <summary>Called after every step and evaluation.</summary>
    public event Action<TrainProgress>? Progress;

    /// <summary>Called with every metrics record (also appended to <see cref="MetricsFile"/>).</summary>
    public event Action<JsonObject>? Metrics;

    /// <summary>
    /// Restores model weights, optimizer state and step from the checkpoint in the output directory.
    /// Returns false when there is none; throws when one is there but inconsistent.
    /// </summary>
    public bool TryResume()
    {
        if (_outDir is null || !File.Exists(Path.Combine(_outDir, StateFile)))
        {
            return false;
        }
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(_outDir, StateFile)))
            ?? throw new InvalidDataException($"{StateFile} in {_outDir} is empty");
        var step = state["step"]?.GetValue<long>() ?? throw new InvalidDataException($"{StateFile} in {_outDir} has no step");
        using (var weights = ShardedSafeTensors.Open(_outDir))
        {
            CheckStep(weights.Metadata, step, ModelCheckpoint.WeightsFile);
            ModelCheckpoint.LoadInto(_model, "", weights, _outDir, null);
        }
        using (var opt = SafeTensorsFile.Open(Path.Combine(_outDir, OptimizerFile)))
        {
            CheckStep(opt.Metadata, step, OptimizerFile);
            _optimizer.LoadState(name => opt.Contains(name) ? opt.Read(name) : null, step);
        }
        Step = step;
        _lastValLoss = state["val_loss"]?.GetValue<double>();
        return true;
    }

    /// <summary>
    /// Moves the step clock — the learning-rate schedule's position and the batch order — forward to
    /// <paramref name="step"/> (never back, never past <see cref="TrainerOptions.Steps"/>), for a peer that
    /// joins a collaborative run in progress: its next step uses the learning rate the others use. The
    /// optimizer's own state is untouched (its bias correction counts the updates it has made).
    /// </summary>
    public void AdvanceTo(long step) => Step = Math.Clamp(step, Step, Math.Max(Step, _options.Steps));

    /// <summary>Trains until <see cref="TrainerOptions.Steps"/>; cancellation stops after the current step and saves a checkpoint.</summary>
    public TrainResult Run(CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var startStep = Step;
        var lastLoss = RunUntil(_options.Steps, cancellationToken);
        _lastValLoss ??= Evaluate();
        SaveCheckpoint();
        var total = clock.Elapsed;
        return new TrainResult(Step, _recentLosses.Count > 0 ? _recentLosses.Average() : lastLoss, _lastValLoss.Value,
            (Step - startStep) * TokensPerStep / Math.Max(total.TotalSeconds, 1e-9), total, _outDir);
    }

    /// <summary>Tokens consumed by one step.</summary>
    public long TokensPerStep => (long)_options.BatchSize * _data.SeqLen;

    /// <summary>
    /// Takes optimizer steps until <see cref="Step"/> reaches <paramref name="targetStep"/> (at most
    /// <see cref="TrainerOptions.Steps"/>), with the periodic evaluations and checkpoints of the options
    /// but no final ones; returns the last step's loss. Collaborative training calls it once per round.
    /// </summary>
    public double RunUntil(long targetStep, CancellationToken cancellationToken = default)
    {
        targetStep = Math.Min(targetStep, _options.Steps);
        var clock = Stopwatch.StartNew();
        var startStep = Step;
        var tokensPerStep = TokensPerStep;
        _model.train();
        double lastLoss = double.NaN;
        while (Step < targetStep && !cancellationToken.IsCancellationRequested)
        {
            var lr = _schedule.At(Step);
            var (loss, gradNorm) = TrainStep(lr);
            lastLoss = loss;
            if (!double.IsFinite(loss))
            {
                SaveCheckpoint();
                throw new InvalidOperationException($"training diverged at step {Step} (loss {loss}); lower --lr and resume from the last checkpoint");
            }
            Step++;
            _recentLosses.Enqueue(loss);
            if (_recentLosses.Count > 20)
            {
                _recentLosses.Dequeue();
            }
            var elapsed = clock.Elapsed.TotalSeconds;
            var tokensPerSecond = (Step - startStep) * tokensPerStep / Math.Max(elapsed, 1e-9);
            Emit(new JsonObject
            {
                ["step"] = Step,
                ["train_loss"] = Round(loss),
                ["lr"] = lr,
                ["grad_norm"] = Round(gradNorm),
                ["tokens"] = Step * tokensPerStep,
                ["tokens_per_s"] = Math.Round(tokensPerSecond, 1),
            });
            if (Step % _options.EvalEvery == 0 || Step == _options.Steps)
            {
                _lastValLoss = Evaluate();
                Emit(new JsonObject { ["step"] = Step, ["val_loss"] = Round(_lastValLoss.Value), ["val_ppl"] = Round(Math.Exp(_lastValLoss.Value)) });
            }
            var eta = TimeSpan.FromSeconds((_options.Steps - Step) * elapsed / Math.Max(1, Step - startStep));
            Progress?.Invoke(new TrainProgress(Step, _options.Steps, loss, _lastValLoss, lr, tokensPerSecond, eta));
            if (_options.CheckpointEvery > 0 && Step % _options.CheckpointEvery == 0 && Step < _options.Steps)
            {
                SaveCheckpoint();
            }
        }
        return lastLoss;
    }

    /// <summary>One optimizer step on the batch of the current step; returns (loss, gradient norm before clipping).</summary>
    private (double Loss, double GradNorm) TrainStep(double lr)
    {
        using var scope = NewDisposeScope();
        // grad mode is per thread and the step may run on any pool thread: say what it needs
        using var grad = enable_grad();
        var (input, target) = _data.GetTrainBatch(Step, _options.BatchSize);
        _optimizer.ZeroGrad();
        var loss = _model.Loss(input, target);
        loss.backward();
        var norm = _options.GradientClip > 0
            ? nn.utils.clip_grad_norm_(_optimizer.Parameters, _options.GradientClip)
            : GradNorm();
        _optimizer.Step(lr);
        return (loss.item<float>(), norm);
    }

    private double GradNorm()
    {
        using var scope = NewDisposeScope();
        var total = _optimizer.Parameters.Where(p => p.grad is not null).Select(p => p.grad!.Squared().sum()).Aggregate((a, b) => a.Plus(b));
        return Math.Sqrt(total.item<float>());
    }

    /// <summary>Mean validation loss (nats/token) over the configured number of batches.</summary>
    public double Evaluate()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        _model.eval();
        double sum = 0;
        long count = 0;
        foreach (var (input, target) in _data.ValidationBatches(_options.BatchSize, _options.EvalBatches))
        {
            using var batchScope = NewDisposeScope();
            var n = input.shape[0];
            sum += _model.Loss(input, target).item<float>() * n;
            count += n;
        }
        _model.train();
        return count == 0 ? double.NaN : sum / count;
    }

    /// <summary>Writes weights, optimizer state and trainer state (last) to the output directory.</summary>
    public void SaveCheckpoint()
    {
        if (_outDir is null)
        {
            return;
        }
        var step = Step.ToString(CultureInfo.InvariantCulture);
        var meta = new Dictionary<string, string> { [StepKey] = step };
        ModelCheckpoint.Save(_outDir, _model, meta);
        SafeTensorsWriter.Write(Path.Combine(_outDir, OptimizerFile), _optimizer.StateTensors(), meta);
        var state = new JsonObject
        {
            ["step"] = Step,
            ["val_loss"] = _lastValLoss,
            ["seed"] = _options.Seed,
            ["options"] = JsonSerializer.SerializeToNode(_options),
        };
        AtomicFile.WriteAllText(Path.Combine(_outDir, StateFile), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private void Emit(JsonObject record)
    {
        Metrics?.Invoke(record);
        if (_outDir is not null)
        {
            Directory.CreateDirectory(_outDir);
            File.AppendAllText(Path.Combine(_outDir, MetricsFile), record.ToJsonString() + "\n");
        }
    }

    private static void CheckStep(IReadOnlyDictionary<string, string> metadata, long step, string file)
    {
        var saved = ModelCheckpoint.MetadataLong(metadata, StepKey);
        if (saved != step)
        {
            throw new InvalidDataException($"{file} is from step {saved?.ToString(CultureInfo.InvariantCulture) ?? "?"} but {StateFile} says {step}: the checkpoint was interrupted while being written; delete the output directory or restore it from a copy");
        }
    }

    private static double Round(double v) => double.IsFinite(v) ? Math.Round(v, 5) : v;

    /// <inheritdoc/>
    public void Dispose() => _optimizer.Dispose();
}
