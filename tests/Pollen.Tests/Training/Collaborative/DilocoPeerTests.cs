using Pollen.Model.Config;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Training.Collaborative;
using Pollen.Training.Data;
using Pollen.Training.Local;
using static TorchSharp.torch;

namespace Pollen.Tests.Training.Collaborative;

/// <summary>DiLoCo rounds between in-process peers, with parts passed through the wire codec.</summary>
public class DilocoPeerTests
{
    private static readonly ModelConfig Tiny = TrainingTestData.Tiny;

    private static readonly Lazy<TokenDataset> Data = new(() => TrainingTestData.Stories(corpusSeed: 31, dataSeed: 2));

    [Theory]
    [InlineData(DeltaCompression.F32)]
    [InlineData(DeltaCompression.Int8)]
    public void ThreePeersStayIdenticalAfterEveryRoundAndLossFalls(DeltaCompression compression)
    {
        const int peers = 3, rounds = 4;
        var options = new DilocoOptions { InnerSteps = 10, Compression = compression };
        var inner = new TrainerOptions { Steps = rounds * options.InnerSteps, BatchSize = 8, LearningRate = 3e-3, EvalEvery = 1000, EvalBatches = 4 };
        var models = Enumerable.Range(0, peers).Select(_ => new Transformer(Tiny, seed: 11)).ToArray();
        var group = models.Select((m, k) => new DilocoPeer(m, Data.Value.Shard(k, peers), inner, options)).ToArray();
        try
        {
            Assert.Single(group.Select(p => p.ParameterHash).Distinct());
            var before = group[0].Evaluate();
            long bytesSent = 0;
            for (var round = 0; round < rounds; round++)
            {
                using var scope = NewDisposeScope();
                var parts = group.Select(p =>
                {
                    var wire = DeltaCodec.Encode(p.InnerRound(TestContext.Current.CancellationToken), compression);
                    bytesSent += wire.Length;
                    return DeltaCodec.Decode(wire, compression, p.Length);
                }).ToArray();
                var combined = Aggregator.Combine(parts, options.Aggregation);
                foreach (var peer in group)
                {
                    peer.ApplyOuter(combined);
                }
                Assert.Single(group.Select(p => p.ParameterHash).Distinct());
                Assert.All(group, p => Assert.Equal(round + 1, p.Round));
            }
            var after = group[0].Evaluate();
            Assert.True(after < before - 1.0, $"validation loss {before:F3} → {after:F3}");
            Assert.Equal(peers * rounds * DeltaCodec.EncodedSize(group[0].Length, compression), bytesSent);
        }
        finally
        {
            foreach (var p in group)
            {
                p.Dispose();
            }
            foreach (var m in models)
            {
                m.Dispose();
            }
        }
    }
}
