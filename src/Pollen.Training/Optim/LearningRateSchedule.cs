namespace Pollen.Training.Optim;

/// <summary>Linear warmup from 0 to the peak, then cosine decay to <c>peak · minRatio</c> at the last step.</summary>
/// <param name="Peak">Peak learning rate.</param>
/// <param name="WarmupSteps">Steps of linear warmup.</param>
/// <param name="TotalSteps">Step at which the decay ends.</param>
/// <param name="MinRatio">Final learning rate as a fraction of the peak (default 0.1).</param>
public sealed record LearningRateSchedule(double Peak, int WarmupSteps, int TotalSteps, double MinRatio = 0.1)
{
    /// <summary>The learning rate for step <paramref name="step"/> (0-based).</summary>
    public double At(long step)
    {
        if (step < WarmupSteps)
        {
            return Peak * (step + 1) / WarmupSteps;
        }
        var span = Math.Max(1, TotalSteps - WarmupSteps);
        var progress = Math.Clamp((double)(step - WarmupSteps) / span, 0, 1);
        var cosine = 0.5 * (1 + Math.Cos(Math.PI * progress));
        return Peak * (MinRatio + ((1 - MinRatio) * cosine));
    }
}
