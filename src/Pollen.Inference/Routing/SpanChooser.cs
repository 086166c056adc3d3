namespace Pollen.Inference.Routing;

/// <summary>
/// Chooses which blocks a joining server should host so that a swarm fills itself in: the window of
/// <c>n</c> consecutive blocks served by the fewest peers.
/// </summary>
public static class SpanChooser
{
    /// <summary>
    /// The start of the window of <paramref name="count"/> blocks (within <paramref name="blockCount"/>)
    /// whose least-served block has the fewest servers; ties go to the window with the fewest servers over
    /// all its blocks, then to the lowest start. With nobody serving, that is 0..count-1.
    /// </summary>
    public static (int Start, int End) LeastServed(IEnumerable<(int Start, int End)> served, int blockCount, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockCount, 1);
        if (count < 1 || count > blockCount)
        {
            throw new ArgumentOutOfRangeException(nameof(count), $"--num-blocks must be 1..{blockCount} (the model has {blockCount} blocks), got {count}");
        }
        var coverage = new int[blockCount];
        foreach (var (start, end) in served)
        {
            for (var b = Math.Max(0, start); b < Math.Min(end, blockCount); b++)
            {
                coverage[b]++;
            }
        }
        var best = 0;
        (int Min, long Sum) bestScore = (int.MaxValue, long.MaxValue);
        for (var s = 0; s + count <= blockCount; s++)
        {
            var window = coverage.AsSpan(s, count);
            var score = (window.ToArray().Min(), window.ToArray().Sum(c => (long)c));
            if (score.Item1 < bestScore.Min || (score.Item1 == bestScore.Min && score.Item2 < bestScore.Sum))
            {
                best = s;
                bestScore = score;
            }
        }
        return (best, best + count);
    }
}
