using Pollen.Training.Collaborative;
using static TorchSharp.torch;

namespace Pollen.Tests.Training.Collaborative;

public class AggregatorTests
{
    [Fact]
    public void RulesComputeWhatTheySay()
    {
        using var scope = NewDisposeScope();
        Tensor[] parts = [tensor(new[] { 1f, 10f }), tensor(new[] { 2f, 20f }), tensor(new[] { 3f, 30f }), tensor(new[] { 100f, -50f })];
        Assert.Equal([26.5f, 2.5f], Aggregator.Combine(parts, Aggregation.Mean).data<float>().ToArray());
        Assert.Equal([2.5f, 15f], Aggregator.Combine(parts, Aggregation.Median).data<float>().ToArray());
        Assert.Equal([2.5f, 15f], Aggregator.Combine(parts, Aggregation.TrimmedMean).data<float>().ToArray()); // drops 1 from each end
        Assert.Equal([2f, 20f], Aggregator.Combine(parts[..3], Aggregation.Median).data<float>().ToArray());
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 0)]
    [InlineData(3, 1)]
    [InlineData(5, 1)]
    [InlineData(10, 2)]
    [InlineData(11, 2)]
    public void TrimCountRemovesAtLeastOneOutlierOnceThereAreThreeParts(int parts, int expected) =>
        Assert.Equal(expected, Aggregator.TrimCount(parts, 0.2));

    [Fact]
    public void ABadMinorityIsOutVotedByTheRobustRulesButNotByTheMean()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(7);
        var truth = randn([4096], generator: g);
        var honest = Enumerable.Range(0, 4).Select(_ => truth + (0.01f * randn([4096], generator: g))).ToList();
        var clean = Aggregator.Combine(honest, Aggregation.Mean);
        foreach (var bad in new[] { honest[0] * 100, randn([4096], generator: g) * 50 })
        {
            List<Tensor> parts = [.. honest, bad];
            double Error(Aggregation a) => (Aggregator.Combine(parts, a) - clean).norm().item<float>() / clean.norm().item<float>();
            Assert.True(Error(Aggregation.Mean) > 1.0, $"mean error {Error(Aggregation.Mean)}");
            Assert.True(Error(Aggregation.TrimmedMean) < 0.05, $"trimmed mean error {Error(Aggregation.TrimmedMean)}");
            Assert.True(Error(Aggregation.Median) < 0.05, $"median error {Error(Aggregation.Median)}");
        }
    }
}
