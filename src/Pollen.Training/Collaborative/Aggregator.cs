using Pollen.Model.Runtime;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative;

/// <summary>How the parts of a round are combined (<c>--aggregation</c>).</summary>
public enum Aggregation
{
    /// <summary>Plain average: optimal with honest peers, moved arbitrarily by one bad part.</summary>
    Mean,

    /// <summary>
    /// Per coordinate, drop the largest and smallest values (a fraction of the parts, at least one from
    /// each end once there are three parts) and average the rest.
    /// </summary>
    TrimmedMean,

    /// <summary>Per-coordinate median (the mean of the two middle values for an even count).</summary>
    Median,
}

/// <summary>
/// Combines equally long pseudo-gradient parts from several peers. The robust rules let a minority of
/// scaled or random updates be out-voted coordinate by coordinate (Yin et al., 2018), at the cost of a
/// sort per coordinate.
/// </summary>
public static class Aggregator
{
    /// <summary>Combines <paramref name="parts"/> (each 1-D, same length) into a new tensor.</summary>
    public static Tensor Combine(IReadOnlyList<Tensor> parts, Aggregation aggregation, double trimFraction = 0.2)
    {
        if (parts.Count == 0)
        {
            throw new ArgumentException("nothing to aggregate", nameof(parts));
        }
        var length = parts[0].numel();
        if (parts.Any(p => p.numel() != length))
        {
            throw new ArgumentException("parts differ in length", nameof(parts));
        }
        if (trimFraction is < 0 or >= 0.5)
        {
            throw new ArgumentOutOfRangeException(nameof(trimFraction), "the trim fraction must be in [0, 0.5)");
        }
        using var scope = NewDisposeScope();
        var stacked = stack(parts.Select(p => p.reshape(-1).to(float32)).ToArray(), 0); // (k, n)
        var k = parts.Count;
        Tensor result;
        switch (aggregation)
        {
            case Aggregation.Mean:
                result = stacked.mean([0]);
                break;
            case Aggregation.TrimmedMean:
                var trim = TrimCount(k, trimFraction);
                var sorted = stacked.sort(0).Values;
                result = sorted.narrow(0, trim, k - (2 * trim)).mean([0]);
                break;
            case Aggregation.Median:
                var ordered = stacked.sort(0).Values;
                result = k % 2 == 1
                    ? ordered.select(0, k / 2)
                    : ordered.select(0, (k / 2) - 1).Plus(ordered.select(0, k / 2)).TimesConstant(0.5);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(aggregation));
        }
        return result.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Values dropped from each end per coordinate for <paramref name="parts"/> parts.</summary>
    public static int TrimCount(int parts, double trimFraction) =>
        parts < 3 ? 0 : Math.Min((parts - 1) / 2, Math.Max(1, (int)Math.Floor(parts * trimFraction)));
}
