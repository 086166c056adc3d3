namespace Pollen.Training.Data;

// The unigram baseline: the loss a model that ignores context would reach.
public sealed partial class TokenDataset
{
    /// <summary>
    /// Cross-entropy in nats per token of the validation targets under the unigram distribution of the
    /// train targets (over all shards), with add-one smoothing over <see cref="VocabSize"/>. A trained
    /// model's validation loss must fall well below this to have learned anything beyond token frequencies.
    /// </summary>
    public double UnigramBaseline()
    {
        var counts = new long[VocabSize];
        long total = 0;
        foreach (var id in _train)
        {
            foreach (var token in Sequence(id)[1..])
            {
                counts[token]++;
            }

            total += SeqLen;
        }

        var logProbabilities = LogProbabilities(counts, total);
        var sum = 0.0;
        foreach (var id in _validation)
        {
            foreach (var token in Sequence(id)[1..])
            {
                sum -= logProbabilities[token];
            }
        }

        return sum / ((long)_validation.Length * SeqLen);
    }

    /// <summary>
    /// Cross-entropy in nats per token of <paramref name="evalTokens"/> under the unigram distribution of
    /// <paramref name="trainTokens"/>, with add-one smoothing over <paramref name="vocabSize"/> ids.
    /// For eval text like the train text it lies well below ln vocabSize, the loss of a uniform guess.
    /// </summary>
    public static double UnigramEntropy(ReadOnlySpan<int> trainTokens, ReadOnlySpan<int> evalTokens, int vocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 1);
        if (evalTokens.IsEmpty)
        {
            throw new ArgumentException("At least one token to evaluate is needed.", nameof(evalTokens));
        }

        var counts = new long[vocabSize];
        foreach (var token in trainTokens)
        {
            counts[token]++;
        }

        var logProbabilities = LogProbabilities(counts, trainTokens.Length);
        var sum = 0.0;
        foreach (var token in evalTokens)
        {
            sum -= logProbabilities[token];
        }

        return sum / evalTokens.Length;
    }

    private static double[] LogProbabilities(long[] counts, long total)
    {
        // p(v) = (count(v) + 1) / (total + V)
        var logDenominator = Math.Log(total + counts.Length);
        var result = new double[counts.Length];
        for (var v = 0; v < counts.Length; v++)
        {
            result[v] = Math.Log(counts[v] + 1) - logDenominator;
        }

        return result;
    }
}
