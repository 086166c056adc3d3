using Pollen.Model.Tokenizers;
using Pollen.Training.Data;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Pollen.Tests.Training.Data;

public sealed class TokenDatasetTests
{
    private const int SeqLen = 10;


    // Token i has value i, so a row's first input token / SeqLen is its sequence id.
    private static TokenDataset Counting(int tokens = (100 * SeqLen) + 1, double validationFraction = 0.05, int seed = 0) =>
        new(Enumerable.Range(0, tokens).ToArray(), tokens, SeqLen, validationFraction, seed);

    private static long[] Values(Tensor tensor) => tensor.data<long>().ToArray();

    private static int[] RowIds(Tensor input)
    {
        var values = Values(input);
        return Enumerable.Range(0, (int)input.shape[0]).Select(b => (int)(values[b * SeqLen] / SeqLen)).ToArray();
    }

    [Fact]
    public void TokenizeAppendsEosAfterEachDocument()
    {
        Assert.Equal([97, 98, 257, 99, 257], TokenDataset.Tokenize(["ab", "c"], new ByteTokenizer()));
    }

    [Fact]
    public void PacksSequencesOfSeqLenPlusOneWithShiftedTargets()
    {
        using var scope = torch.NewDisposeScope();
        var data = Counting(tokens: 1005);

        Assert.Equal(1005, data.TotalTokens);
        Assert.Equal(100, data.TrainSequences + data.ValidationSequences); // (1005 - 1) / 10, tail dropped
        Assert.Equal(Enumerable.Range(370, SeqLen + 1), data.Sequence(37).ToArray());

        var (input, target) = data.GetTrainBatch(step: 3, batchSize: 4);
        Assert.Equal(ScalarType.Int64, input.dtype);
        Assert.Equal(ScalarType.Int64, target.dtype);
        Assert.Equal([4L, SeqLen], input.shape);
        Assert.Equal([4L, SeqLen], target.shape);
        var inputs = Values(input);
        var targets = Values(target);
        var ids = RowIds(input);
        for (var b = 0; b < 4; b++)
        {
            for (var t = 0; t < SeqLen; t++)
            {
                Assert.Equal((ids[b] * SeqLen) + t, inputs[(b * SeqLen) + t]);
                Assert.Equal((ids[b] * SeqLen) + t + 1, targets[(b * SeqLen) + t]);
            }
        }
    }

    [Fact]
    public void SplitsEvenlyAndIndependentlyOfSeedAndShard()
    {
        var data = Counting();

        Assert.Equal(95, data.TrainSequences);
        Assert.Equal(5, data.ValidationSequences);
        Assert.Equal([10, 30, 50, 70, 90], data.ValidationSequenceIds);
        Assert.Equal(Enumerable.Range(0, 100), data.TrainSequenceIds.Concat(data.ValidationSequenceIds).Order());
        Assert.Equal(data.ValidationSequenceIds, Counting(seed: 42).ValidationSequenceIds);
        Assert.Equal(data.TrainSequenceIds, Counting(seed: 42).TrainSequenceIds);
        Assert.Equal(data.ValidationSequenceIds, data.Shard(1, 3).ValidationSequenceIds);

        Assert.Equal(1, Counting(validationFraction: 0.001).ValidationSequences);
        Assert.Equal(1, Counting(validationFraction: 0.999).TrainSequences);
        Assert.Equal(30, Counting(validationFraction: 0.3).ValidationSequences);
    }

    [Fact]
    public void ShuffleIsADeterministicPermutationPerEpoch()
    {
        var data = Counting(seed: 7);
        var epoch0 = data.TrainOrder(0);

        Assert.Equal(data.TrainSequenceIds, epoch0.Order());
        Assert.NotEqual(data.TrainSequenceIds, epoch0);
        Assert.Equal(epoch0, Counting(seed: 7).TrainOrder(0));
        Assert.NotEqual(epoch0, data.TrainOrder(1));
        Assert.NotEqual(epoch0, Counting(seed: 8).TrainOrder(0));
        Assert.Equal(data.TrainOrder(1), Counting(seed: 8).TrainOrder(0)); // epoch e shuffles with seed + e
    }

    [Fact]
    public void ShardsPartitionTheTrainSet()
    {
        var data = Counting();
        var shards = Enumerable.Range(0, 3).Select(k => data.Shard(k, 3)).ToList();
        var all = shards.SelectMany(s => s.TrainSequenceIds).ToList();

        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.Equal(data.TrainSequenceIds, all.Order());
        Assert.Equal([32, 32, 31], shards.Select(s => s.TrainSequences));
        Assert.Equal(data.TrainSequenceIds.Where((_, i) => i % 3 == 1), shards[1].TrainSequenceIds);
        Assert.All(shards, s => Assert.Equal(data.ValidationSequenceIds, s.ValidationSequenceIds));
        Assert.Equal(shards[1].TrainSequenceIds.Order(), shards[1].TrainOrder(0).Order());
        Assert.Throws<DataException>(() => data.Shard(0, 96));
    }

    [Theory]
    [InlineData(1, 8)] // 95 sequences: step 11 straddles epochs 0 and 1, step 23 epochs 1 and 2
    [InlineData(3, 5)] // shard 2 of 3 holds 31 sequences
    public void TrainBatchesFollowTheEpochOrderAndWrapAround(int shards, int batchSize)
    {
        using var scope = torch.NewDisposeScope();
        var data = Counting(seed: 3).Shard(shards - 1, shards);
        var visits = Enumerable.Range(0, 4).SelectMany(e => data.TrainOrder(e)).ToArray();

        for (var step = 0; step < 3 * data.TrainSequences / batchSize; step++)
        {
            Assert.Equal(visits.AsSpan(step * batchSize, batchSize).ToArray(), RowIds(data.GetTrainBatch(step, batchSize).Input));
        }
    }

    [Fact]
    public void TrainBatchIsTheSameForTwoDatasetsBuiltTheSameWay()
    {
        using var scope = torch.NewDisposeScope();
        var text = SyntheticCorpus.Stories(1, 20_000).ToList();
        var a = TokenDataset.FromDocuments(text, new ByteTokenizer(), seqLen: 32, seed: 5).Shard(1, 2);
        var b = TokenDataset.FromDocuments(text, new ByteTokenizer(), seqLen: 32, seed: 5).Shard(1, 2);
        var other = TokenDataset.FromDocuments(text, new ByteTokenizer(), seqLen: 32, seed: 6).Shard(1, 2);

        foreach (var step in new long[] { 0, 1, 17, 5000 })
        {
            var (inputA, targetA) = a.GetTrainBatch(step, 6);
            var (inputB, targetB) = b.GetTrainBatch(step, 6);
            Assert.True(inputA.eq(inputB).all().item<bool>());
            Assert.True(targetA.eq(targetB).all().item<bool>());
            Assert.False(inputA.eq(other.GetTrainBatch(step, 6).Input).all().item<bool>());
        }
    }

    [Fact]
    public void ValidationBatchesCoverEachValidationSequenceOnce()
    {
        using var scope = torch.NewDisposeScope();
        var data = Counting();

        var batches = data.ValidationBatches(batchSize: 2).ToList();

        Assert.Equal([2L, 2L, 1L], batches.Select(b => b.Input.shape[0]));
        Assert.All(batches, b => Assert.Equal(SeqLen, b.Target.shape[1]));
        Assert.Equal(data.ValidationSequenceIds, batches.SelectMany(b => RowIds(b.Input)));
        Assert.Equal(Enumerable.Range(501, SeqLen).Select(i => (long)i), Values(batches[1].Target)[..SeqLen]); // sequence 50
        Assert.Equal(2, data.ValidationBatches(batchSize: 2, maxBatches: 2).Count());
        Assert.Single(data.ValidationBatches(batchSize: 10));
    }

    [Fact]
    public void TooSmallCorpusSaysHowManyTokensAreNeeded()
    {
        var error = Assert.Throws<DataException>(() => Counting(tokens: 2 * SeqLen));
        Assert.Contains("at least 21 tokens", error.Message, StringComparison.Ordinal);

        var smallest = Counting(tokens: (2 * SeqLen) + 1);
        Assert.Equal(1, smallest.TrainSequences);
        Assert.Equal(1, smallest.ValidationSequences);
    }

    [Fact]
    public void TokenOutsideTheVocabularyIsRejected()
    {
        var error = Assert.Throws<DataException>(() => new TokenDataset([1, 2, 300, 4], vocabSize: 259, seqLen: 1));
        Assert.Contains("Token 300 at position 2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnigramEntropyIsTheSmoothedCrossEntropy()
    {
        // p(0) = (2 + 1) / (3 + 2)
        Assert.Equal(-Math.Log(0.6), TokenDataset.UnigramEntropy([0, 0, 1], [0], vocabSize: 2), precision: 12);
        // p(1) = 2/5, p(2) = 1/5 over a vocabulary of 3
        Assert.Equal(-(Math.Log(0.4) + Math.Log(0.2)) / 2, TokenDataset.UnigramEntropy([0, 1], [1, 2], vocabSize: 3), precision: 12);
    }

    [Fact]
    public void UnigramBaselineOfStoriesIsPositiveAndBelowUniform()
    {
        var tokenizer = new ByteTokenizer();
        var data = TokenDataset.FromDocuments(SyntheticCorpus.Stories(4, 200_000), tokenizer, seqLen: 64);

        var baseline = data.UnigramBaseline();

        Assert.InRange(baseline, 1.0, Math.Log(tokenizer.VocabSize) - 1.0);
        var train = data.TrainSequenceIds.SelectMany(id => data.Sequence(id)[1..].ToArray()).ToArray();
        var validation = data.ValidationSequenceIds.SelectMany(id => data.Sequence(id)[1..].ToArray()).ToArray();
        Assert.Equal(TokenDataset.UnigramEntropy(train, validation, tokenizer.VocabSize), baseline, precision: 9);
        Assert.Equal(baseline, data.Shard(1, 4).UnigramBaseline());
    }
}
