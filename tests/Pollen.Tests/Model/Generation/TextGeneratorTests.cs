using Pollen.Model.Config;
using Pollen.Model.Generation;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using static TorchSharp.torch;

namespace Pollen.Tests.Model.Generation;

public class TextGeneratorTests
{
    private static Transformer ByteModel(int seed = 5)
    {
        manual_seed(seed);
        var model = new Transformer(new ModelConfig
        {
            HiddenSize = 32,
            NumHiddenLayers = 2,
            NumAttentionHeads = 4,
            NumKeyValueHeads = 2,
            HeadDim = 8,
            IntermediateSize = 64,
            VocabSize = ModelPresets.ByteVocabSize,
            MaxPositionEmbeddings = 96,
            TieWordEmbeddings = true,
            EosTokenIds = [ByteTokenizer.EosTokenId],
            InitializerRange = 0.5, // large weights: a random model with peaked, varied predictions
        });
        model.eval();
        return model;
    }

    private static readonly int[] Prompt = [.. "Hi there"u8.ToArray().Select(b => (int)b)];

    private static Task<GenerationResult> Run(Transformer model, GenerationOptions options) =>
        TextGenerator.GenerateToEndAsync(model, ByteTokenizer.Instance, Prompt, options, TestContext.Current.CancellationToken);

    [Fact]
    public async Task SeededSamplingIsReproducibleAndSeedsDiffer()
    {
        using var model = ByteModel();
        var options = new GenerationOptions { MaxNewTokens = 30, Temperature = 1.0, TopK = 50, Seed = 7, StopAtEos = false };
        var a = await Run(model, options);
        var b = await Run(model, options);
        var c = await Run(model, options with { Seed = 8 });
        Assert.Equal(30, a.Ids.Count);
        Assert.Equal(a.Ids, b.Ids);
        Assert.NotEqual(a.Ids, c.Ids);
        Assert.Equal(FinishReason.Length, a.Finish);
    }

    [Fact]
    public async Task GreedyStreamEqualsStepByStepFullForwardArgmax()
    {
        using var model = ByteModel();
        var result = await Run(model, new GenerationOptions { MaxNewTokens = 15, StopAtEos = false });
        // recompute without any cache: argmax of a full forward over prompt + output so far
        var ids = Prompt.Select(i => (long)i).ToList();
        using var noGrad = no_grad();
        foreach (var expected in result.Ids)
        {
            using var scope = NewDisposeScope();
            var logits = model.forward(tensor(ids.ToArray(), [1, ids.Count]));
            var argmax = logits[0, -1].narrow(0, 0, ByteTokenizer.TokenCount).argmax().item<long>();
            Assert.Equal(argmax, expected);
            ids.Add(expected);
        }
    }

    [Fact]
    public async Task StreamedTextConcatenatesToTheDecodedOutput()
    {
        using var model = ByteModel();
        var pieces = new List<string>();
        var ids = new List<int>();
        await foreach (var t in TextGenerator.GenerateAsync(model, ByteTokenizer.Instance, Prompt,
            new GenerationOptions { MaxNewTokens = 40, Temperature = 1.5, Seed = 3, StopAtEos = false }, TestContext.Current.CancellationToken))
        {
            pieces.Add(t.Text);
            ids.Add(t.Id);
        }
        Assert.Equal(ByteTokenizer.Instance.Decode(ids.ToArray()), string.Concat(pieces));
    }

    [Fact]
    public async Task StopStringEndsGenerationAndIsNotReturned()
    {
        using var model = ByteModel();
        var free = await Run(model, new GenerationOptions { MaxNewTokens = 40, StopAtEos = false });
        var text = free.Text;
        Assert.True(text.Length >= 12, $"need some text, got '{text}'");
        var stop = text.Substring(6, 3);
        var cut = text.IndexOf(stop, StringComparison.Ordinal);
        var stopped = await Run(model, new GenerationOptions { MaxNewTokens = 40, StopAtEos = false, StopStrings = [stop] });
        Assert.Equal(FinishReason.Stop, stopped.Finish);
        Assert.Equal(text[..cut], stopped.Text);
        Assert.True(stopped.Ids.Count < free.Ids.Count);
    }

    [Fact]
    public async Task EosEndsGeneration()
    {
        using var model = ByteModel();
        var free = await Run(model, new GenerationOptions { MaxNewTokens = 20, StopAtEos = false });
        // make the third generated token an end-of-sequence token for this test by treating it as EOS
        var eos = free.Ids[2];
        using var custom = new Transformer(model.Config with { EosTokenIds = [eos] }, initialize: false);
        custom.load_state_dict(model.state_dict());
        custom.eval();
        var result = await TextGenerator.GenerateToEndAsync(custom, null, Prompt, new GenerationOptions { MaxNewTokens = 20 }, TestContext.Current.CancellationToken);
        Assert.Equal(FinishReason.Eos, result.Finish);
        Assert.Equal(free.Ids.Take(free.Ids.ToList().IndexOf(eos) + 1), result.Ids);
    }

    [Fact]
    public async Task BadPromptsAreRefusedClearly()
    {
        using var model = ByteModel();
        var ct = TestContext.Current.CancellationToken;
        var options = new GenerationOptions();
        await Assert.ThrowsAsync<ArgumentException>(() => TextGenerator.GenerateToEndAsync(model, null, [], options, ct));
        var tooLong = Enumerable.Repeat(65, 96).ToArray();
        Assert.Contains("context", (await Assert.ThrowsAsync<ArgumentException>(() => TextGenerator.GenerateToEndAsync(model, null, tooLong, options, ct))).Message);
        Assert.Contains("outside the vocabulary", (await Assert.ThrowsAsync<ArgumentException>(() => TextGenerator.GenerateToEndAsync(model, null, [5, 999], options, ct))).Message);
    }

    [Fact]
    public async Task GenerationStopsAtTheContextLength()
    {
        using var model = ByteModel();
        var prompt = Enumerable.Repeat(65, 90).ToArray();
        var result = await TextGenerator.GenerateToEndAsync(model, null, prompt, new GenerationOptions { MaxNewTokens = 50, StopAtEos = false }, TestContext.Current.CancellationToken);
        Assert.Equal(6, result.Ids.Count);
        Assert.Equal(FinishReason.Length, result.Finish);
    }
}
