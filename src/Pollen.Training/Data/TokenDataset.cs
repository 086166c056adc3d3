using Pollen.Model.Tokenizers;

namespace Pollen.Training.Data;

/// <summary>
/// A tokenized corpus packed into fixed-length training sequences, split into train and validation
/// sets, shuffled per epoch and optionally sharded, serving int64 (B, T) batches.
/// </summary>
/// <remarks>
/// <para>Documents are tokenized, each followed by the tokenizer's EOS id (when it has one), and
/// concatenated into one token stream. Sequence <c>i</c> is the <c>SeqLen + 1</c> tokens starting at
/// <c>i * SeqLen</c>: the input is its first <c>SeqLen</c> tokens, the target the same shifted by one, so
/// every token after the first is a target exactly once. The incomplete tail is dropped.</para>
/// <para>Validation sequences are spread evenly over the stream (not taken from its end), so a corpus
/// whose files differ in style is validated on all of them. The split depends only on the stream and
/// the fraction, never on the seed or the shard.</para>
/// <para>Batches are a pure function of (seed, shard, step): epoch <c>e</c> visits this shard's train
/// sequences in an order shuffled with seed <c>seed + e</c>, and step <c>s</c> takes the
/// <c>batchSize</c> sequences at positions <c>s * batchSize ...</c> of the endless run of epochs, so a
/// resumed run sees exactly the batches it would have seen.</para>
/// </remarks>
public sealed partial class TokenDataset
{
    /// <summary>Default share of sequences held out for validation (5%).</summary>
    public const double DefaultValidationFraction = 0.05;

    private readonly int[] _tokens;
    private readonly int[] _train;
    private readonly int[] _validation;
    private readonly int[] _shardTrain;

    /// <summary>Packs and splits an already tokenized stream.</summary>
    /// <param name="tokens">The token stream; ids must lie in [0, <paramref name="vocabSize"/>). Not copied: do not modify it afterwards.</param>
    /// <param name="vocabSize">Number of ids (for validation of ids and the unigram baseline).</param>
    /// <param name="seqLen">Tokens per input sequence (T).</param>
    /// <param name="validationFraction">Share of sequences held out, in (0, 1); at least one sequence each side.</param>
    /// <param name="seed">Seed of the per-epoch shuffle.</param>
    /// <exception cref="DataException">The stream is too short for one train and one validation sequence,
    /// or holds an id outside the vocabulary.</exception>
    public TokenDataset(int[] tokens, int vocabSize, int seqLen, double validationFraction = DefaultValidationFraction, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 1);
        if (!(validationFraction > 0 && validationFraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "The validation fraction must lie strictly between 0 and 1.");
        }

        CheckIds(tokens, vocabSize);
        var sequences = tokens.Length > 0 ? (int)Math.Min((tokens.Length - 1L) / seqLen, int.MaxValue) : 0;
        if (sequences < 2)
        {
            throw new DataException(
                $"The corpus has {tokens.Length} tokens, too few for one train and one validation sequence of {seqLen + 1} tokens " +
                $"(sequence length {seqLen} plus the shifted target): at least {(2L * seqLen) + 1} tokens are needed. " +
                "Pass a larger corpus or a shorter sequence length.");
        }

        var validationCount = (int)Math.Clamp(Math.Round(sequences * validationFraction), 1, sequences - 1);
        (_train, _validation) = Split(sequences, validationCount);
        _tokens = tokens;
        _shardTrain = _train;
        VocabSize = vocabSize;
        SeqLen = seqLen;
        ValidationFraction = validationFraction;
        Seed = seed;
        ShardCount = 1;
    }

    private TokenDataset(TokenDataset all, int shardIndex, int shardCount)
    {
        _tokens = all._tokens;
        _train = all._train;
        _validation = all._validation;
        VocabSize = all.VocabSize;
        SeqLen = all.SeqLen;
        ValidationFraction = all.ValidationFraction;
        Seed = all.Seed;
        ShardIndex = shardIndex;
        ShardCount = shardCount;
        _shardTrain = new int[((_train.Length - shardIndex - 1) / shardCount) + 1];
        for (var i = 0; i < _shardTrain.Length; i++)
        {
            _shardTrain[i] = _train[shardIndex + (i * shardCount)];
        }
    }

    /// <summary>Tokens per input sequence (T); each packed sequence holds T + 1 tokens.</summary>
    public int SeqLen { get; }

    /// <summary>Number of token ids.</summary>
    public int VocabSize { get; }

    /// <summary>Seed of the per-epoch shuffle (epoch e shuffles with seed + e).</summary>
    public int Seed { get; }

    /// <summary>Share of sequences held out for validation, as requested.</summary>
    public double ValidationFraction { get; }

    /// <summary>Tokens in the whole stream, EOS ids included.</summary>
    public long TotalTokens => _tokens.Length;

    /// <summary>Train sequences in this shard (all of them when unsharded).</summary>
    public int TrainSequences => _shardTrain.Length;

    /// <summary>Train sequences over all shards.</summary>
    public int TotalTrainSequences => _train.Length;

    /// <summary>Validation sequences (the same for every shard).</summary>
    public int ValidationSequences => _validation.Length;

    /// <summary>This shard's index, in [0, <see cref="ShardCount"/>).</summary>
    public int ShardIndex { get; }

    /// <summary>Number of shards the train set is divided into (1 when unsharded).</summary>
    public int ShardCount { get; }

    /// <summary>Stream indices of this shard's train sequences, in stream order.</summary>
    public IReadOnlyList<int> TrainSequenceIds => _shardTrain;

    /// <summary>Stream indices of the validation sequences, in stream order.</summary>
    public IReadOnlyList<int> ValidationSequenceIds => _validation;

    /// <summary>
    /// Tokenizes <paramref name="documents"/> (EOS after each when the tokenizer has one) and packs them;
    /// see <see cref="TokenDataset(int[], int, int, double, int)"/>.
    /// </summary>
    public static TokenDataset FromDocuments(
        IEnumerable<string> documents,
        ITokenizer tokenizer,
        int seqLen,
        double validationFraction = DefaultValidationFraction,
        int seed = 0) =>
        new(Tokenize(documents, tokenizer), tokenizer.VocabSize, seqLen, validationFraction, seed);

    /// <summary>One token stream: each document's ids followed by the tokenizer's EOS id, if it has one.</summary>
    public static int[] Tokenize(IEnumerable<string> documents, ITokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var stream = new List<int>();
        foreach (var document in documents)
        {
            stream.AddRange(tokenizer.Encode(document));
            if (tokenizer.EosId is { } eos)
            {
                stream.Add(eos);
            }
        }

        return stream.ToArray();
    }

    /// <summary>
    /// Shard <paramref name="index"/> of <paramref name="count"/>: keeps the train sequences whose position
    /// in the full train list is ≡ index (mod count); validation is shared. Shards of a sharded dataset
    /// are taken from the full train list again.
    /// </summary>
    /// <exception cref="DataException">The train set has fewer sequences than shards.</exception>
    public TokenDataset Shard(int index, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, count);
        if (count > _train.Length)
        {
            throw new DataException(
                $"Cannot split {_train.Length} train sequences into {count} shards (each needs at least one); " +
                "pass a larger corpus, a shorter sequence length or fewer shards.");
        }

        return new TokenDataset(this, index, count);
    }

    /// <summary>The <see cref="SeqLen"/> + 1 tokens of sequence <paramref name="id"/> of the stream.</summary>
    public ReadOnlySpan<int> Sequence(int id)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(id, _train.Length + _validation.Length);
        return _tokens.AsSpan(id * SeqLen, SeqLen + 1);
    }

    private static (int[] Train, int[] Validation) Split(int sequences, int validationCount)
    {
        // Validation sequence j sits at floor((j + 1/2) * S / V): evenly spread, and distinct because S >= V.
        var validation = new int[validationCount];
        var isValidation = new bool[sequences];
        for (var j = 0; j < validationCount; j++)
        {
            validation[j] = (int)(((2L * j) + 1) * sequences / (2L * validationCount));
            isValidation[validation[j]] = true;
        }

        var train = new int[sequences - validationCount];
        var next = 0;
        for (var i = 0; i < sequences; i++)
        {
            if (!isValidation[i])
            {
                train[next++] = i;
            }
        }

        return (train, validation);
    }

    private static void CheckIds(int[] tokens, int vocabSize)
    {
        for (var i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)vocabSize)
            {
                throw new DataException(
                    $"Token {tokens[i]} at position {i} is outside the vocabulary of {vocabSize} ids; " +
                    "pass the tokenizer the model was built for.");
            }
        }
    }
}
