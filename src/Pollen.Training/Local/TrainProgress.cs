namespace Pollen.Training.Local;

/// <summary>A snapshot of a running training job, reported after every step and evaluation.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="TotalSteps">Steps the run will reach.</param>
/// <param name="TrainLoss">Loss of the last step (nats/token).</param>
/// <param name="ValLoss">Last validation loss, if any yet.</param>
/// <param name="LearningRate">Learning rate of the last step.</param>
/// <param name="TokensPerSecond">Training throughput since this process started the run.</param>
/// <param name="Eta">Estimated time to the last step.</param>
public sealed record TrainProgress(long Step, long TotalSteps, double TrainLoss, double? ValLoss, double LearningRate, double TokensPerSecond, TimeSpan Eta);

/// <summary>The outcome of a training run.</summary>
/// <param name="Steps">Steps reached.</param>
/// <param name="TrainLoss">Mean loss of the last 20 steps.</param>
/// <param name="ValLoss">Final validation loss.</param>
/// <param name="TokensPerSecond">Training throughput of this process.</param>
/// <param name="Elapsed">Wall time of this process's part of the run.</param>
/// <param name="CheckpointDirectory">Where the final checkpoint is.</param>
public sealed record TrainResult(long Steps, double TrainLoss, double ValLoss, double TokensPerSecond, TimeSpan Elapsed, string? CheckpointDirectory);
