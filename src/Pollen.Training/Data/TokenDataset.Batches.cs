using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Training.Data;

// Batches: per-epoch shuffled train order, step-addressed train batches, validation batches.
public sealed partial class TokenDataset
{
    private readonly Lock _orderLock = new();

    // The two most recent epoch orders: a batch may straddle an epoch boundary.
    private readonly (long Epoch, int[]? Order)[] _orders = [(-1, null), (-1, null)];

    /// <summary>
    /// The train batch for optimizer step <paramref name="step"/> (0-based): int64 tensors
    /// <c>input</c> and <c>target</c> of shape (<paramref name="batchSize"/>, <see cref="SeqLen"/>), where
    /// <c>target</c> is <c>input</c> shifted by one token. Depends only on (seed, shard, step, batch size),
    /// wrapping into later epochs (each reshuffled) as needed. The caller owns the tensors (they join the
    /// current dispose scope). Safe to call from several threads.
    /// </summary>
    public (Tensor Input, Tensor Target) GetTrainBatch(long step, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var first = checked(step * batchSize);
        var ids = new int[batchSize];
        for (var b = 0; b < batchSize; b++)
        {
            var position = checked(first + b);
            var epoch = position / _shardTrain.Length;
            ids[b] = EpochOrder(epoch)[position % _shardTrain.Length];
        }

        return MakeBatch(ids);
    }

    /// <summary>
    /// Validation batches in stream order, each (≤ <paramref name="batchSize"/>, <see cref="SeqLen"/>) int64;
    /// the last one holds the remainder, so every validation sequence is seen once. At most
    /// <paramref name="maxBatches"/> batches when given. The caller owns (and should dispose) each pair.
    /// </summary>
    public IEnumerable<(Tensor Input, Tensor Target)> ValidationBatches(int batchSize, int? maxBatches = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (maxBatches is { } max)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(max, nameof(maxBatches));
        }

        return Iterate(batchSize, maxBatches ?? int.MaxValue);

        IEnumerable<(Tensor Input, Tensor Target)> Iterate(int size, int limit)
        {
            for (int start = 0, batches = 0; start < _validation.Length && batches < limit; start += size, batches++)
            {
                yield return MakeBatch(_validation.AsSpan(start, Math.Min(size, _validation.Length - start)));
            }
        }
    }

    /// <summary>
    /// Stream indices of this shard's train sequences in the order epoch <paramref name="epoch"/> visits
    /// them: a permutation of <see cref="TrainSequenceIds"/> shuffled with seed <c>Seed + epoch</c>.
    /// </summary>
    public int[] TrainOrder(long epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        return (int[])EpochOrder(epoch).Clone();
    }

    private int[] EpochOrder(long epoch)
    {
        lock (_orderLock)
        {
            foreach (var (cachedEpoch, order) in _orders)
            {
                if (cachedEpoch == epoch && order is not null)
                {
                    return order;
                }
            }

            var shuffled = (int[])_shardTrain.Clone();
            Shuffle(shuffled, new Random(unchecked((int)(Seed + epoch))));
            var oldest = _orders[0].Epoch <= _orders[1].Epoch ? 0 : 1;
            _orders[oldest] = (epoch, shuffled);
            return shuffled;
        }
    }

    // Fisher-Yates written out rather than Random.Shuffle, whose algorithm is not promised to stay fixed
    // across .NET versions; Random(int).Next(int) is, so a run resumed on a newer runtime sees the same order.
    private static void Shuffle(int[] items, Random rng)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = rng.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private (Tensor Input, Tensor Target) MakeBatch(ReadOnlySpan<int> ids)
    {
        var length = SeqLen;
        var input = new long[ids.Length * length];
        var target = new long[ids.Length * length];
        for (var b = 0; b < ids.Length; b++)
        {
            var sequence = _tokens.AsSpan(ids[b] * length, length + 1);
            var row = b * length;
            for (var t = 0; t < length; t++)
            {
                input[row + t] = sequence[t];
                target[row + t] = sequence[t + 1];
            }
        }

        // One bulk copy per tensor. // (B, T) int64
        long[] shape = [ids.Length, length];
        return (torch.tensor(input, shape), torch.tensor(target, shape));
    }
}
