using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Pollen.Model.Tokenizers;
using static TorchSharp.torch;

namespace Pollen.Model.Generation;

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>The token budget or the model's context was used up.</summary>
    Length,

    /// <summary>The model produced an end-of-sequence token.</summary>
    Eos,

    /// <summary>The text reached a stop string.</summary>
    Stop,
}

/// <summary>One generated token and the text it releases (text can lag a token behind, e.g. mid-character).</summary>
/// <param name="Id">The token id.</param>
/// <param name="Text">Text released with this token (may be empty).</param>
/// <param name="Finish">Set on the last token.</param>
public sealed record GeneratedToken(int Id, string Text, FinishReason? Finish);

/// <summary>
/// Autoregressive generation over any <see cref="ICausalLM"/>: one prefill of the prompt, then one
/// cached step per token, streaming tokens as they are produced. Text is released only when it can no
/// longer change: an incomplete UTF-8 character or a possible start of a stop string is held back.
/// </summary>
public static class TextGenerator
{
    /// <summary>Generates after <paramref name="promptIds"/>; the tokenizer (optional) is needed for text and stop strings.</summary>
    public static async IAsyncEnumerable<GeneratedToken> GenerateAsync(
        ICausalLM model,
        ITokenizer? tokenizer,
        IReadOnlyList<int> promptIds,
        GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var sampler = new Sampler(options);
        var config = model.Config;
        if (promptIds.Count == 0)
        {
            throw new ArgumentException("the prompt is empty: give at least one token", nameof(promptIds));
        }
        if (promptIds.Count >= config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"the prompt has {promptIds.Count} tokens but the model's context is {config.MaxPositionEmbeddings}; shorten the prompt", nameof(promptIds));
        }
        foreach (var id in promptIds)
        {
            if ((uint)id >= (uint)config.VocabSize)
            {
                throw new ArgumentException($"prompt token id {id} is outside the vocabulary (0..{config.VocabSize - 1})", nameof(promptIds));
            }
        }
        if (options.StopStrings.Count > 0 && tokenizer is null)
        {
            throw new ArgumentException("stop strings need a tokenizer to decode text", nameof(options));
        }
        if (options.MaxNewTokens == 0)
        {
            yield break;
        }
        var eos = new HashSet<int>(config.EosTokenIds);
        if (tokenizer?.EosId is int tokEos)
        {
            eos.Add(tokEos);
        }
        var allowed = Math.Min(config.VocabSize, tokenizer?.VocabSize ?? config.VocabSize);
        var maxLength = Math.Min(config.MaxPositionEmbeddings, promptIds.Count + options.MaxNewTokens);
        var text = new TextTracker(tokenizer, promptIds, options.StopStrings);
        var seen = new List<int>(promptIds);

        using var session = model.OpenSession(maxLength);
        var input = promptIds.Select(i => (long)i).ToArray();
        for (var produced = 0; ; produced++)
        {
            float[] logits;
            using (var ids = tensor(input, [1, input.Length]))
            using (var last = await session.ForwardAsync(ids, cancellationToken).ConfigureAwait(false))
            {
                logits = ToArray(last);
            }
            var next = sampler.Next(logits, seen, allowed);
            seen.Add(next);
            if (options.StopAtEos && eos.Contains(next))
            {
                yield return new GeneratedToken(next, text.Flush(), FinishReason.Eos);
                yield break;
            }
            var (delta, stopped) = text.Add(next);
            if (stopped)
            {
                yield return new GeneratedToken(next, delta, FinishReason.Stop);
                yield break;
            }
            if (promptIds.Count + produced + 1 >= maxLength) // the budget or the context (prompt + output) is full
            {
                yield return new GeneratedToken(next, delta + text.Flush(), FinishReason.Length);
                yield break;
            }
            yield return new GeneratedToken(next, delta, null);
            input = [next];
        }
    }

    /// <summary>Runs generation to the end and returns ids, text and finish reason.</summary>
    public static async Task<GenerationResult> GenerateToEndAsync(
        ICausalLM model, ITokenizer? tokenizer, IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        var ids = new List<int>();
        var text = new System.Text.StringBuilder();
        var finish = FinishReason.Length;
        await foreach (var token in GenerateAsync(model, tokenizer, promptIds, options, cancellationToken).ConfigureAwait(false))
        {
            ids.Add(token.Id);
            text.Append(token.Text);
            finish = token.Finish ?? finish;
        }
        return new GenerationResult(ids, text.ToString(), finish);
    }

    private static float[] ToArray(Tensor row)
    {
        using var scope = NewDisposeScope(); // .to/.contiguous may each return a new handle
        var flat = row.to(float32).contiguous().reshape(-1);
        return MemoryMarshal.Cast<byte, float>(flat.bytes).ToArray();
    }
}

/// <summary>The whole output of a generation.</summary>
/// <param name="Ids">Generated ids (an end-of-sequence id included when it ended the text).</param>
/// <param name="Text">The generated text, without a stop string.</param>
/// <param name="Finish">Why it ended.</param>
public sealed record GenerationResult(IReadOnlyList<int> Ids, string Text, FinishReason Finish);
