using Pollen.Model.Generation;

namespace Pollen.Tests.Model.Generation;

public class SamplerTests
{
    [Fact]
    public void GreedyPicksTheLargestLogitWithinTheAllowedVocabulary()
    {
        var sampler = new Sampler(new GenerationOptions());
        Assert.Equal(2, sampler.Next([0.1f, 0.5f, 3f, 1f], [], 4));
        Assert.Equal(1, sampler.Next([0.1f, 0.5f, 3f, 1f], [], 2)); // id 2 is beyond what the tokenizer knows
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits()
    {
        var sampler = new Sampler(new GenerationOptions { RepetitionPenalty = 2.0 });
        float[] logits = [2.0f, 1.5f, -1f];
        Assert.Equal(1, sampler.Next(logits, [0, 2], 3));
        Assert.Equal(1.0f, logits[0]);
        Assert.Equal(-2f, logits[2]);
    }

    [Fact]
    public void TopKOneAndTinyTopPAreGreedy()
    {
        float[] logits = [0.3f, 1.2f, 1.1f, -4f];
        for (var seed = 0; seed < 20; seed++)
        {
            Assert.Equal(1, new Sampler(new GenerationOptions { Temperature = 5, TopK = 1, Seed = seed }).Next([.. logits], [], 4));
            Assert.Equal(1, new Sampler(new GenerationOptions { Temperature = 5, TopP = 0.01, Seed = seed }).Next([.. logits], [], 4));
        }
    }

    [Fact]
    public void SamplingFollowsTheSoftmaxAndIsReproducible()
    {
        float[] logits = [0f, MathF.Log(3f), float.NegativeInfinity]; // probabilities 1/4, 3/4, 0
        var sampler = new Sampler(new GenerationOptions { Temperature = 1, Seed = 42 });
        var counts = new int[3];
        for (var i = 0; i < 4000; i++)
        {
            counts[sampler.Next([.. logits], [], 3)]++;
        }
        Assert.Equal(0, counts[2]);
        Assert.InRange(counts[1] / 4000.0, 0.72, 0.78);
        var again = new Sampler(new GenerationOptions { Temperature = 1, Seed = 42 });
        var replay = new int[3];
        for (var i = 0; i < 4000; i++)
        {
            replay[again.Next([.. logits], [], 3)]++;
        }
        Assert.Equal(counts, replay);
    }

    [Fact]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        float[] logits = [MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.2f)];
        var seen = new HashSet<int>();
        var sampler = new Sampler(new GenerationOptions { Temperature = 1, TopP = 0.75, Seed = 1 });
        for (var i = 0; i < 500; i++)
        {
            seen.Add(sampler.Next([.. logits], [], 3));
        }
        Assert.Equal([0, 1], seen.Order());
    }

    [Theory]
    [InlineData(-1, 0, 0, 1.0, 1.0, "max new tokens")]
    [InlineData(10, -0.5, 0, 1.0, 1.0, "temperature")]
    [InlineData(10, 1, -2, 1.0, 1.0, "top-k")]
    [InlineData(10, 1, 0, 0.0, 1.0, "top-p")]
    [InlineData(10, 1, 0, 1.5, 1.0, "top-p")]
    [InlineData(10, 1, 0, 1.0, 0.0, "repetition penalty")]
    public void OutOfRangeOptionsAreNamed(int max, double temperature, int topK, double topP, double penalty, string name)
    {
        var options = new GenerationOptions { MaxNewTokens = max, Temperature = temperature, TopK = topK, TopP = topP, RepetitionPenalty = penalty };
        Assert.Contains(name, Assert.Throws<ArgumentException>(options.Validate).Message);
    }
}
