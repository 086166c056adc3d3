namespace Pollen.Model.Generation;

/// <summary>
/// Picks the next token from one row of logits: repetition penalty, then greedy argmax or
/// temperature → top-k → top-p → a draw from a seeded <see cref="Random"/>. Works on a float array
/// so it is exact and reproducible regardless of the tensor library's threads.
/// </summary>
public sealed class Sampler
{
    private readonly GenerationOptions _options;
    private readonly Random _random;

    /// <summary>Creates a sampler for <paramref name="options"/> (validated here).</summary>
    public Sampler(GenerationOptions options)
    {
        options.Validate();
        _options = options;
        _random = new Random(options.Seed);
    }

    /// <summary>
    /// Returns the next id. <paramref name="logits"/> is modified. Only ids below
    /// <paramref name="allowedVocab"/> can be chosen (a tokenizer may know fewer ids than the model).
    /// </summary>
    public int Next(float[] logits, IReadOnlyCollection<int> seen, int allowedVocab)
    {
        var n = Math.Min(allowedVocab, logits.Length);
        if (n <= 0)
        {
            throw new ArgumentException("no token can be chosen: the allowed vocabulary is empty", nameof(allowedVocab));
        }
        if (_options.RepetitionPenalty != 1.0)
        {
            var penalty = (float)_options.RepetitionPenalty;
            foreach (var id in seen.Distinct())
            {
                if ((uint)id < (uint)n)
                {
                    logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty;
                }
            }
        }
        if (!_options.DoSample)
        {
            return ArgMax(logits, n);
        }
        // candidates sorted by logit, descending; ties keep the lower id first for determinism
        var order = Enumerable.Range(0, n).ToArray();
        Array.Sort(order, (a, b) => logits[b] != logits[a] ? logits[b].CompareTo(logits[a]) : a.CompareTo(b));
        var keep = _options.TopK > 0 ? Math.Min(_options.TopK, n) : n;
        var probs = new double[keep];
        var max = logits[order[0]] / _options.Temperature;
        double total = 0;
        for (var i = 0; i < keep; i++)
        {
            probs[i] = Math.Exp((logits[order[i]] / _options.Temperature) - max); // stable softmax
            total += probs[i];
        }
        if (_options.TopP < 1.0)
        {
            double cumulative = 0;
            var cut = keep;
            for (var i = 0; i < keep; i++)
            {
                cumulative += probs[i] / total;
                if (cumulative >= _options.TopP)
                {
                    cut = i + 1;
                    break;
                }
            }
            keep = cut;
            total = probs.Take(keep).Sum();
        }
        var draw = _random.NextDouble() * total;
        for (var i = 0; i < keep; i++)
        {
            draw -= probs[i];
            if (draw < 0)
            {
                return order[i];
            }
        }
        return order[keep - 1];
    }

    private static int ArgMax(float[] logits, int n)
    {
        var best = 0;
        for (var i = 1; i < n; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }
        return best;
    }
}
