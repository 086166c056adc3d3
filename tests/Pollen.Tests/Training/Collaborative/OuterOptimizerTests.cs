using Pollen.Model.Llama;
using Pollen.Training.Collaborative;
using static TorchSharp.torch;

namespace Pollen.Tests.Training.Collaborative;

public class OuterOptimizerTests
{
    [Fact]
    public void NesterovStepMatchesTheFormula()
    {
        using var scope = NewDisposeScope();
        using var outer = new OuterOptimizer(learningRate: 0.5, momentum: 0.9);
        var theta = tensor(new[] { 1f, 2f });
        var delta = tensor(new[] { 0.1f, -0.2f });
        var first = outer.Step(theta, delta);   // v = Δ; θ − 0.5·(Δ + 0.9·Δ)
        Assert.True(first.allclose(tensor(new[] { 1f - (0.5f * 0.19f), 2f + (0.5f * 0.38f) }), 1e-6, 1e-7));
        var second = outer.Step(first, delta);  // v = 0.9·Δ + Δ = 1.9Δ; θ − 0.5·(Δ + 0.9·1.9Δ)
        var expected = first - (0.5f * (delta + (0.9f * 1.9f * delta)));
        Assert.True(second.allclose(expected, 1e-6, 1e-7));
        Assert.Equal(2, outer.StepCount);
    }

    [Fact]
    public void PeersApplyingTheSameDeltaHoldIdenticalParameters()
    {
        using var scope = NewDisposeScope();
        var config = Tests.Model.ModelTestConfigs.Tiny();
        using var a = new Transformer(config, seed: 1);
        using var b = new Transformer(config, seed: 1);
        var layoutA = new ParameterVector(a.named_parameters().Select(p => (p.name, p.parameter)));
        var layoutB = new ParameterVector(b.named_parameters().Select(p => (p.name, p.parameter)));
        Assert.Equal(layoutA.LayoutHash, layoutB.LayoutHash);
        Assert.Equal(layoutA.ContentHash(), layoutB.ContentHash());
        Assert.Equal(a.parameters().Sum(p => p.numel()), layoutA.Length);

        using var outerA = new OuterOptimizer();
        using var outerB = new OuterOptimizer();
        var delta = randn([layoutA.Length], generator: new Generator(3)) * 1e-3f;
        layoutA.Scatter(outerA.Step(layoutA.Gather(), delta));
        layoutB.Scatter(outerB.Step(layoutB.Gather(), delta));
        Assert.Equal(layoutA.ContentHash(), layoutB.ContentHash());

        using var c = new Transformer(config, seed: 2);
        Assert.NotEqual(layoutA.ContentHash(), new ParameterVector(c.named_parameters().Select(p => (p.name, p.parameter))).ContentHash());
    }

    [Fact]
    public void GatherThenScatterRoundTripsAndRejectsAWrongLength()
    {
        using var scope = NewDisposeScope();
        using var model = new Transformer(Tests.Model.ModelTestConfigs.Tiny(), seed: 4);
        var layout = new ParameterVector(model.named_parameters().Select(p => (p.name, p.parameter)));
        var before = layout.ContentHash();
        var flat = layout.Gather();
        layout.Scatter(zeros_like(flat));
        Assert.NotEqual(before, layout.ContentHash());
        layout.Scatter(flat);
        Assert.Equal(before, layout.ContentHash());
        Assert.Throws<ArgumentException>(() => layout.Scatter(zeros(layout.Length + 1)));
    }
}
