using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Pollen.Training.Data;
using Xunit;

namespace Pollen.Tests.Training.Data;

public sealed partial class SyntheticCorpusTests
{
    // A sentence ends at . ! or ? (optionally closing a quote) followed by the end or a capital/quote;
    // a speech tag such as `"Where is it?" asked Lily.` continues the sentence in lower case.
    [GeneratedRegex("[.!?]\"?(\\s+(?=[A-Z\"])|\\s*$)")]
    private static partial Regex SentenceEnd();

    [GeneratedRegex("[a-z']+")]
    private static partial Regex Word();

    [Fact]
    public void SameSeedGivesSameText()
    {
        Assert.Equal(SyntheticCorpus.Generate(3, 50_000), SyntheticCorpus.Generate(3, 50_000));
        Assert.Equal(SyntheticCorpus.Stories(3).Take(50), SyntheticCorpus.Stories(3).Take(50));
    }

    [Fact]
    public void DifferentSeedsGiveDifferentText()
    {
        var a = SyntheticCorpus.Stories(3).Take(20).ToList();
        var b = SyntheticCorpus.Stories(4).Take(20).ToList();
        Assert.Empty(a.Intersect(b));
    }

    [Fact]
    public void GenerateMeetsTheSizeTargetAtAStoryBoundary()
    {
        const int Target = 100_000;
        var text = SyntheticCorpus.Generate(5, Target);
        var stories = SyntheticCorpus.Stories(5, Target).ToList();

        Assert.Equal(text.Length, Encoding.UTF8.GetByteCount(text)); // ASCII
        Assert.InRange(text.Length, Target, Target + stories[^1].Length + SyntheticCorpus.Separator.Length - 1);
        Assert.Equal(string.Join(SyntheticCorpus.Separator, stories), text);
        Assert.Equal(stories, SyntheticCorpus.Stories(5).Take(stories.Count));
        Assert.Equal(string.Empty, SyntheticCorpus.Generate(5, 0));
    }

    [Fact]
    public void GeneratesFourMegabytesFast()
    {
        var stopwatch = Stopwatch.StartNew();
        var text = SyntheticCorpus.Generate(11, 4_000_000);
        stopwatch.Stop();

        Assert.True(text.Length >= 4_000_000);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public void StoriesHaveFourToTwelveSentencesAndStartAsStories()
    {
        var counts = new HashSet<int>();
        foreach (var story in SyntheticCorpus.Stories(8).Take(2000))
        {
            var sentences = SentenceEnd().Count(story);
            Assert.InRange(sentences, SyntheticCorpus.MinSentences, SyntheticCorpus.MaxSentences);
            Assert.DoesNotContain('\n', story);
            Assert.True(char.IsUpper(story[0]), story);
            Assert.Matches("[.!?]\"?$", story);
            counts.Add(sentences);
        }

        Assert.True(counts.Count >= 5, $"sentence counts seen: {string.Join(", ", counts)}");
    }

    [Fact]
    public void VocabularyIsRichButBounded()
    {
        var text = SyntheticCorpus.Generate(2, 1_000_000).ToLowerInvariant();
        var words = Word().Matches(text).Select(m => m.Value).ToHashSet();

        Assert.InRange(words.Count, 300, 2000);
        Assert.Contains("once", words);
        Assert.Contains("she", words);
        Assert.Contains("he", words);
        Assert.Contains('"', text);
    }

    [Fact]
    public void SavedCorpusLoadsBackAsTheSameStories()
    {
        var file = Path.Combine(Path.GetTempPath(), $"pollen-synthetic-{Guid.NewGuid():N}.txt");
        try
        {
            File.WriteAllText(file, SyntheticCorpus.Generate(9, 20_000));
            Assert.Equal(SyntheticCorpus.Stories(9, 20_000), TextCorpus.Load(file));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
