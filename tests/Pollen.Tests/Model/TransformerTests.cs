using Pollen.Model.Layers;
using Pollen.Model.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Tests.Model;

public class TransformerTests
{
    private static Transformer Build(string name, int seed = 7)
    {
        manual_seed(seed);
        var model = new Transformer(ModelTestConfigs.All[name]);
        model.eval();
        return model;
    }

    private static Tensor RandomIds(int batch, int length, int vocab, int seed)
    {
        var g = new Random(seed);
        var ids = new long[batch * length];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = g.Next(vocab);
        }
        return tensor(ids, [batch, length]);
    }

    [Theory]
    [MemberData(nameof(ModelTestConfigs.AllNames), MemberType = typeof(ModelTestConfigs))]
    public void ForwardHasLogitShapeAndIsFinite(string name)
    {
        using var scope = NewDisposeScope();
        using var model = Build(name);
        var logits = model.forward(RandomIds(2, 10, model.Config.VocabSize, 1));
        Assert.Equal(new long[] { 2, 10, model.Config.VocabSize }, logits.shape);
        Assert.True(logits.isfinite().all().item<bool>());
        Assert.True(logits.std().item<float>() > 0);
    }

    [Theory]
    [MemberData(nameof(ModelTestConfigs.AllNames), MemberType = typeof(ModelTestConfigs))]
    public void IncrementalDecodingEqualsFullForward(string name)
    {
        using var scope = NewDisposeScope();
        using var model = Build(name);
        using var noGrad = no_grad();
        var ids = RandomIds(2, 12, model.Config.VocabSize, 2);
        var full = model.forward(ids);
        using var cache = new KvCache(32);
        // a 5-token prefill, then one token at a time, then a 3-token chunk
        var parts = new List<Tensor> { model.forward(ids.narrow(1, 0, 5), cache: cache) };
        for (var t = 5; t < 9; t++)
        {
            parts.Add(model.forward(ids.narrow(1, t, 1), cache: cache));
        }
        parts.Add(model.forward(ids.narrow(1, 9, 3), cache: cache));
        var incremental = cat(parts, 1);
        Assert.Equal(12, cache.Length);
        var maxDiff = (incremental - full).abs().max().item<float>();
        Assert.True(maxDiff < 1e-5, $"max |incremental - full| = {maxDiff}");
    }

    [Theory]
    [MemberData(nameof(ModelTestConfigs.AllNames), MemberType = typeof(ModelTestConfigs))]
    public void BlockAloneEqualsBlockInsideModel(string name)
    {
        using var scope = NewDisposeScope();
        using var model = Build(name);
        using var noGrad = no_grad();
        var ids = RandomIds(1, 8, model.Config.VocabSize, 3);
        var positions = Transformer.DefaultPositions(1, 8);
        var hidden = model.Embed(ids);
        var afterFirst = model.Blocks[0].forward(hidden, positions);

        // a fresh block of index 1 with block 1's weights, run by itself on block 0's output
        var alone = new Block(model.Config, 1);
        alone.load_state_dict(model.Blocks[1].state_dict());
        alone.eval();
        var expected = model.Blocks[1].forward(afterFirst, positions);
        var actual = alone.forward(afterFirst, positions);
        Assert.True((actual - expected).abs().max().item<float>() == 0);

        // and the blocks chained by hand equal the model
        var h = hidden;
        foreach (var block in model.Blocks)
        {
            h = block.forward(h, positions);
        }
        Assert.True((model.Head(h) - model.forward(ids)).abs().max().item<float>() < 1e-6);
    }

    [Theory]
    [MemberData(nameof(ModelTestConfigs.AllNames), MemberType = typeof(ModelTestConfigs))]
    public void ColumnMajorWeightsKeepNamesValuesAndResults(string name)
    {
        using var scope = NewDisposeScope();
        using var model = Build(name);
        using var noGrad = no_grad();
        var block = model.Blocks[1];
        var x = model.Embed(RandomIds(3, 5, model.Config.VocabSize, 4));
        var positions = Transformer.DefaultPositions(3, 5);
        var expected = block.forward(x, positions);
        var before = block.named_parameters().Select(p => (p.name, Value: p.parameter.clone())).ToList();

        block.UseColumnMajorWeights();

        var after = block.named_parameters().ToList();
        Assert.Equal(before.Select(p => p.name), after.Select(p => p.name));
        for (var i = 0; i < before.Count; i++)
        {
            Assert.Equal(before[i].Value.shape, after[i].parameter.shape);
            Assert.True(before[i].Value.equal(after[i].parameter).all().item<bool>(), before[i].name);
        }
        var transposed = after.Where(p => p.parameter.dim() == 2 && p.parameter.stride(0) == 1 && p.parameter.stride(1) == p.parameter.shape[0]).ToList();
        Assert.Contains(transposed, p => p.name.EndsWith("mlp.down_proj.weight", StringComparison.Ordinal));
        Assert.Contains(transposed, p => p.name.Contains("self_attn.", StringComparison.Ordinal));
        Assert.True((block.forward(x, positions) - expected).abs().max().item<float>() < 1e-5);
    }

    [Theory]
    [MemberData(nameof(ModelTestConfigs.AllNames), MemberType = typeof(ModelTestConfigs))]
    public void BatchedStepOverSessionsOfDifferentLengthsEqualsSeparateSteps(string name)
    {
        using var scope = NewDisposeScope();
        using var model = Build(name);
        using var noGrad = no_grad();
        int[] lengths = [3, 7, 5];
        var batched = lengths.Select(_ => new KvCache(32)).ToArray();
        var separate = lengths.Select(_ => new KvCache(32)).ToArray();
        try
        {
            var block = model.Blocks[1];
            var prefixes = lengths.Select((n, i) => model.Embed(RandomIds(1, n, model.Config.VocabSize, 10 + i))).ToArray();
            for (var i = 0; i < lengths.Length; i++)
            {
                var pos = Transformer.DefaultPositions(1, lengths[i]);
                block.forward(prefixes[i], pos, batched[i]);
                block.forward(prefixes[i], pos, separate[i]);
            }
            // two more steps: one token each, then two tokens each
            foreach (var t in new[] { 1, 2 })
            {
                var step = model.Embed(RandomIds(lengths.Length, t, model.Config.VocabSize, 20 + t)); // (N, T, C)
                var positions = cat(lengths.Select((n, i) => Transformer.DefaultPositions(1, t, batched[i].Length)).ToArray(), 0);
                var together = block.ForwardSessions(step, positions, batched);
                for (var i = 0; i < lengths.Length; i++)
                {
                    var alone = block.forward(step.narrow(0, i, 1), positions.narrow(0, i, 1), separate[i]);
                    var diff = (together.narrow(0, i, 1) - alone).abs().max().item<float>();
                    Assert.True(diff < 1e-5, $"session {i}, step of {t}: batched differs from separate by {diff}");
                }
            }
            Assert.Equal([6, 10, 8], batched.Select(c => c.Length));
        }
        finally
        {
            foreach (var c in batched.Concat(separate))
            {
                c.Dispose();
            }
        }
    }

    public static TheoryData<string, int[], int[], int> SharedScenarios()
    {
        var data = new TheoryData<string, int[], int[], int>();
        foreach (var name in ModelTestConfigs.All.Keys)
        {
            // rows of different lengths; the buffer grows (64 → 128 → 146) and then the rows go back to
            // buffers of their own (past the limit: the maximum lengths added up, over the rows)
            data.Add(name, [60, 3, 5], [200, 120, 120], 90);
            // rows of the same length: appended by one narrow copy
            data.Add(name, [4, 4, 4, 4], [40, 40, 40, 40], 6);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(SharedScenarios))]
    public void SessionsSharingOneCacheBufferStepAsTheyWouldAlone(string name, int[] prefixes, int[] maxLengths, int steps)
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        using var model = new Transformer(ModelTestConfigs.All[name] with { MaxPositionEmbeddings = 256 });
        model.eval();
        using var noGrad = no_grad();
        var n = prefixes.Length;
        var shared = maxLengths.Select(m => new KvCache(m)).ToArray();
        var separate = maxLengths.Select(m => new KvCache(m)).ToArray();
        try
        {
            for (var i = 0; i < n; i++)
            {
                using var stepScope = NewDisposeScope();
                var h = model.Embed(RandomIds(1, prefixes[i], model.Config.VocabSize, 10 + i));
                var pos = Transformer.DefaultPositions(1, prefixes[i]);
                model.RunBlocks(h, pos, shared[i]);
                model.RunBlocks(h, pos, separate[i]);
            }
            Assert.True(KvCache.Share(shared));
            Assert.True(KvCache.AreShared(shared));
            Assert.False(KvCache.AreShared([.. shared.Reverse()])); // rows are in order
            var wasShared = new List<bool>();
            for (var step = 0; step < steps; step++)
            {
                using var stepScope = NewDisposeScope();
                wasShared.Add(KvCache.AreShared(shared));
                var x = model.Embed(RandomIds(n, 1, model.Config.VocabSize, 100 + step)); // (N, 1, C)
                var positions = cat(shared.Select(c => Transformer.DefaultPositions(1, 1, c.Length)).ToArray(), 0); // (N, 1)
                var together = x;
                foreach (var block in model.Blocks)
                {
                    together = block.ForwardSessions(together, positions, shared);
                }
                for (var i = 0; i < n; i++)
                {
                    var alone = model.RunBlocks(x.narrow(0, i, 1), positions.narrow(0, i, 1), separate[i]);
                    var diff = (together.narrow(0, i, 1) - alone).abs().max().item<float>();
                    Assert.True(diff < 1e-5, $"step {step}, session {i}: shared differs from alone by {diff}");
                }
            }
            Assert.Equal(separate.Select(c => c.Length), shared.Select(c => c.Length));
            Assert.True(wasShared[^1] == (prefixes.Max() + steps <= maxLengths.Sum() / n), "rows past the limit are unshared, rows within it stay shared");
        }
        finally
        {
            foreach (var c in shared.Concat(separate))
            {
                c.Dispose();
            }
        }
    }

    [Fact]
    public void CachesThatCannotShareAreLeftAlone()
    {
        using var scope = NewDisposeScope();
        using var model = Build("rope-standard-gqa");
        using var noGrad = no_grad();
        using var a = new KvCache(32);
        using var b = new KvCache(4);
        using var empty = new KvCache(32);
        model.RunBlocks(model.Embed(RandomIds(1, 20, model.Config.VocabSize, 1)), Transformer.DefaultPositions(1, 20), a);
        model.RunBlocks(model.Embed(RandomIds(1, 2, model.Config.VocabSize, 2)), Transformer.DefaultPositions(1, 2), b);
        Assert.False(KvCache.Share([a, empty])); // nothing cached yet in one of them
        Assert.False(KvCache.Share([a, b])); // 21 positions per row would exceed (32 + 4) / 2
        Assert.False(KvCache.Share([a, a]));
        Assert.False(KvCache.AreShared([a, b]));
        Assert.Equal(20, a.Length);
    }

    [Fact]
    public void CausalityHoldsFutureTokensDoNotChangePastLogits()
    {
        using var scope = NewDisposeScope();
        foreach (var name in ModelTestConfigs.All.Keys)
        {
            using var model = Build(name);
            using var noGrad = no_grad();
            var a = RandomIds(1, 10, model.Config.VocabSize, 4);
            var b = a.clone();
            b[0, 9] = (a[0, 9] + 1) % model.Config.VocabSize;
            var diff = (model.forward(a).narrow(1, 0, 9) - model.forward(b).narrow(1, 0, 9)).abs().max().item<float>();
            Assert.True(diff < 1e-6, $"{name}: changing the last token changed earlier logits by {diff}");
        }
    }

    [Fact]
    public void ParameterNamesFollowHuggingFaceLlama()
    {
        using var model = Build("rope-standard-gqa");
        var names = model.state_dict().Keys.ToHashSet();
        string[] expected =
        [
            "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
            "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
            "model.layers.2.self_attn.q_proj.weight", "model.layers.2.self_attn.k_proj.weight",
            "model.layers.2.self_attn.v_proj.weight", "model.layers.2.self_attn.o_proj.weight",
            "model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight",
        ];
        foreach (var key in expected)
        {
            Assert.Contains(key, names);
        }
        Assert.Equal(3 + (9 * 3), names.Count);
        Assert.Equal(model.Config.ParameterCount(), model.parameters().Sum(p => p.numel()));

        using var diff = Build("rope-differential-gqa");
        var diffNames = diff.state_dict().Keys.ToHashSet();
        Assert.Contains("model.layers.0.self_attn.lambda_q1", diffNames);
        Assert.Contains("model.layers.0.self_attn.subln.weight", diffNames);
        Assert.Equal(diff.Config.ParameterCount(), diff.parameters().Sum(p => p.numel()));

        using var tied = Build("rope-standard-mqa-tied-bias");
        Assert.DoesNotContain("lm_head.weight", tied.state_dict().Keys);
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", tied.state_dict().Keys);
        Assert.Equal(tied.Config.ParameterCount(), tied.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void CacheRefusesToGrowPastItsMaximum()
    {
        using var scope = NewDisposeScope();
        using var model = Build("rope-standard-gqa");
        using var noGrad = no_grad();
        using var cache = new KvCache(6);
        model.forward(RandomIds(1, 5, model.Config.VocabSize, 5), cache: cache);
        var error = Assert.Throws<InvalidOperationException>(() => model.forward(RandomIds(1, 2, model.Config.VocabSize, 6), cache: cache));
        Assert.Contains("maximum length of 6", error.Message);
    }
}
