using System.Diagnostics;
using Pollen.Model.Tokenizers;
using static Pollen.Tests.Model.Tokenizers.TestTokenizerFiles;

namespace Pollen.Tests.Model.Tokenizers;

/// <summary>Llama 2 / Mistral style BPE with "▁" and byte fallback; expected ids worked out by hand.</summary>
public sealed class HfSentencePieceBpeTests
{
    private const string LlamaConfig = """
        {
          "add_bos_token": true,
          "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false},
          "eos_token": "</s>"
        }
        """;

    private static readonly HfTokenizer Legacy = HfTokenizer.FromJson(SentencePiece(), LlamaConfig);
    private static readonly HfTokenizer Metaspace = HfTokenizer.FromJson(SentencePiece(metaspace: true), LlamaConfig);

    public static TheoryData<string, int[]> HandDerived => new()
    {
        // "▁hello▁world": ▁ he ll o → ▁ hello → ▁hello (278); ▁w → or → ▁wor → ld → ▁world (283).
        { "hello world", [278, 283] },
        // ▁ t h e: "▁ t" (rank 0) first, then "h e", then "▁t he" → ▁the (274).
        { "the hello", [274, 278] },
        // é is not in the vocabulary: its UTF-8 bytes C3 A9 become <0xC3> (3 + 0xC3) and <0xA9>.
        { "hé", [259, 260, 3 + 0xC3, 3 + 0xA9] },
        // 🙂 = F0 9F 99 82, all byte tokens.
        { "🙂", [259, 3 + 0xF0, 3 + 0x9F, 3 + 0x99, 3 + 0x82] },
        // "▁▁an": "▁ ▁" (rank 12) wins over "a n" (13), so "▁ an" (14) never applies.
        { " an", [284, 285] },
    };

    [Theory]
    [MemberData(nameof(HandDerived))]
    public void EncodeGivesHandDerivedIds(string text, int[] expected)
    {
        Assert.Equal(expected, Legacy.Encode(text));
        Assert.Equal(text, Legacy.Decode(expected));
    }

    [Theory]
    [InlineData("hello world")]
    [InlineData("the hello and the world")]
    [InlineData("Grüße, мир! 你好 🙂")]
    [InlineData("مرحبا بالعالم")]
    [InlineData("tab\tnewline\nend ")]
    public void RoundTripsCoveredAndFallbackText(string text)
    {
        Assert.Equal(text, Legacy.Decode(Legacy.Encode(text)));
        Assert.Equal(text, Metaspace.Decode(Metaspace.Encode(text)));
    }

    [Fact]
    public void LegacyNormalizerKeepsLeadingSpaces()
    {
        Assert.Equal("  two  spaces", Legacy.Decode(Legacy.Encode("  two  spaces")));
    }

    [Fact]
    public void MetaspacePreTokenizerGivesTheSameIdsAsTheNormalizerForm()
    {
        Assert.Equal([278, 283], Metaspace.Encode("hello world"));
        Assert.Equal([259, 260, 3 + 0xC3, 3 + 0xA9], Metaspace.Encode("hé"));
    }

    [Fact]
    public void MetaspaceDecoderDropsEveryReplacementCharOfTheFirstToken()
    {
        // Hugging Face's rule: "▁▁" first → "", then "▁hello" → " hello".
        Assert.Equal(" hello", Metaspace.Decode([284, 278]));
        Assert.Equal("  hello", Legacy.Decode([284, 278]));
    }

    [Fact]
    public void SpecialTokensMapToIdsAndAreSkippedOnDecode()
    {
        // The legacy normalizer prepends ▁ to every segment; Metaspace "first" only at the start of the text.
        Assert.Equal([1, 278, 2], Legacy.Encode("<s>hello</s>"));
        Assert.Equal([1, 277, 2], Metaspace.Encode("<s>hello</s>"));
        Assert.Equal("hello", Legacy.Decode([1, 278, 2]));
        Assert.Equal("<s> hello</s>", Legacy.Decode([1, 278, 2], skipSpecialTokens: false));
    }

    [Fact]
    public void IncompleteFallbackBytesAtTheEndDecodeToOneReplacementChar()
    {
        var ids = Legacy.Encode("h你"); // 你 = E4 BD A0, three byte tokens

        Assert.Equal("h\uFFFD", Legacy.Decode(ids.AsSpan(0, ids.Length - 1)));
        Assert.Equal("h你", Legacy.Decode(ids));
    }

    [Fact]
    public void UnknownCharactersWithoutByteFallbackFuseIntoOneUnk()
    {
        var tokenizer = HfTokenizer.FromJson(SentencePiece(byteFallback: false));

        Assert.Equal([259, 260, 0], tokenizer.Encode("héé"));
        Assert.Equal([259, 260, 0, 259, 260, 0], tokenizer.Encode("hé hé"));
        Assert.Equal("h h", tokenizer.Decode(tokenizer.Encode("hé hé")));
    }

    [Fact]
    public void ReadsBosEosAndAddBosFromConfig()
    {
        Assert.Equal(1, Legacy.BosId);
        Assert.Equal(2, Legacy.EosId);
        Assert.Equal("<s>", Legacy.BosToken);
        Assert.True(Legacy.AddBosToken);
        Assert.Equal(272 + SentencePieceMerges.Length, Legacy.VocabSize);
    }

    [Fact]
    public void FallsBackToSpecialTokensMapAndPostProcessor()
    {
        var tokenizer = HfTokenizer.FromJson(SentencePiece(), specialTokensMapJson: """{"bos_token": "<s>", "eos_token": "</s>"}""");

        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(2, tokenizer.EosId);
        Assert.True(tokenizer.AddBosToken); // the TemplateProcessing post-processor starts with <s>
    }

    [Fact]
    public void WithoutConfigThereIsNoBosOrEos()
    {
        var tokenizer = HfTokenizer.FromJson(SentencePiece());

        Assert.Null(tokenizer.BosId);
        Assert.Null(tokenizer.EosId);
        Assert.False(tokenizer.AddBosToken);
    }

    [Fact]
    public void LongTextWithoutPreTokenizerStaysFast()
    {
        // Without cutting the text where no merge can cross, this is one 440k-char BPE word, which takes
        // ML.Tokenizers many seconds (its symbol removal is quadratic).
        var text = string.Concat(Enumerable.Repeat("hello world the hello ", 20_000));
        Legacy.Encode("warm up");

        var watch = Stopwatch.StartNew();
        var ids = Legacy.Encode(text);
        watch.Stop();

        Assert.Equal(80_001, ids.Length); // 4 words per repeat, then the trailing "▁"
        Assert.Equal(text, Legacy.Decode(ids));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"Encode took {watch.Elapsed}");
    }
}
