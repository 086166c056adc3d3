namespace Pollen.Model.Generation;

/// <summary>How to pick tokens and when to stop. Defaults give greedy decoding of up to 128 tokens.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate (default 128).</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>Softmax temperature; 0 (default) means greedy (argmax).</summary>
    public double Temperature { get; init; }

    /// <summary>Keep only the k most likely tokens before sampling; 0 (default) keeps all.</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of tokens whose probability sums to at least p; 1 (default) keeps all.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>
    /// Penalty for tokens already in the prompt or output (Keskar et al., 2019, as in Hugging Face): a
    /// positive logit is divided by it, a negative one multiplied. 1 (default) is off.
    /// </summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Generation stops when the text contains one of these; the stop string is not returned.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Seed of the sampler (default 0); the same seed gives the same tokens.</summary>
    public int Seed { get; init; }

    /// <summary>Stop at an end-of-sequence token (default true).</summary>
    public bool StopAtEos { get; init; } = true;

    /// <summary>Whether tokens are sampled (temperature above zero) rather than chosen greedily.</summary>
    public bool DoSample => Temperature > 0;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 0)
        {
            throw new ArgumentException($"max new tokens must be ≥ 0 (got {MaxNewTokens})", nameof(MaxNewTokens));
        }
        if (!(Temperature >= 0) || double.IsInfinity(Temperature))
        {
            throw new ArgumentException($"temperature must be ≥ 0 (got {Temperature})", nameof(Temperature));
        }
        if (TopK < 0)
        {
            throw new ArgumentException($"top-k must be ≥ 0 (got {TopK})", nameof(TopK));
        }
        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentException($"top-p must be in (0, 1] (got {TopP})", nameof(TopP));
        }
        if (!(RepetitionPenalty > 0) || double.IsInfinity(RepetitionPenalty))
        {
            throw new ArgumentException($"repetition penalty must be > 0 (got {RepetitionPenalty})", nameof(RepetitionPenalty));
        }
        if (StopStrings.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("stop strings must not be empty", nameof(StopStrings));
        }
    }
}
