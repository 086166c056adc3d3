using System.Text.Json.Nodes;
using Pollen.Model.Tokenizers;
using static Pollen.Tests.Model.Tokenizers.TestTokenizerFiles;

namespace Pollen.Tests.Model.Tokenizers;

/// <summary>GPT-2 / Llama 3 style byte-level BPE; expected ids are worked out by hand from the merge ranks.</summary>
public sealed class HfByteLevelBpeTests
{
    private static readonly HfTokenizer Gpt2 = HfTokenizer.FromJson(ByteLevel(), """{"bos_token": null, "eos_token": "<|endoftext|>"}""");
    private static readonly HfTokenizer Llama3 = HfTokenizer.FromJson(ByteLevel(llama3: true));

    public static TheoryData<string, int[]> HandDerived => new()
    {
        // h e l l o → he → ll → hell → hello (259); Ġ w o r l d → Ġw → or → Ġwor → ld → Ġworld (266).
        { "hello world", [259, 266] },
        // " the": Ġ t h e → he (rank 0) before Ġt (rank 4) → Ġthe (261).
        { "hello the world", [259, 261, 266] },
        // Ġ hello needs rank 14, after hello itself is built.
        { " hello", [270] },
        // No merge for "H e": only "l l" applies.
        { "Hello", [72, 101, 257, 111] },
        // Ġ a n d → an → and → Ġand.
        { " and", [269] },
        // Ties in rank merge left to right: in, in → ing, ing → Ġs → Ġsing.
        { " singing", [277, 272] },
        // ü is C3 BC = "Ã¼" in the byte alphabet.
        { "grün", [281] },
        { " grün", [282] },
        // GPT-2 regex splits the contraction off.
        { "it's", [105, 116, 278] },
        // \s+(?!\S) keeps a trailing newline run together.
        { "a\n\n", [97, 275] },
        // Uncovered bytes stay single bytes: 🙂 = F0 9F 99 82.
        { "🙂", [0xF0, 0x9F, 0x99, 0x82] },
    };

    [Theory]
    [MemberData(nameof(HandDerived))]
    public void EncodeGivesHandDerivedIds(string text, int[] expected)
    {
        Assert.Equal(expected, Gpt2.Encode(text));
        Assert.Equal(text, Gpt2.Decode(expected));
    }

    [Theory]
    [InlineData("Grüße aus München, Äpfel und Öl")]
    [InlineData("Привет, мир")]
    [InlineData("你好，世界")]
    [InlineData("مرحبا بالعالم")]
    [InlineData("🙂👍🏽 👨‍👩‍👧")]
    [InlineData("  leading, trailing  and\ttabs\r\n")]
    [InlineData("")]
    public void RoundTripsAnyText(string text)
    {
        Assert.Equal(text, Gpt2.Decode(Gpt2.Encode(text)));
        Assert.Equal(text, Llama3.Decode(Llama3.Encode(text)));
    }

    [Fact]
    public void AddedSpecialTokenMapsToItsIdAndIsSkippedOnDecode()
    {
        var ids = Gpt2.Encode("hello<|endoftext|> world");

        Assert.Equal([259, EndOfText, 266], ids);
        Assert.Equal("hello world", Gpt2.Decode(ids));
        Assert.Equal("hello<|endoftext|> world", Gpt2.Decode(ids, skipSpecialTokens: false));
        Assert.True(Gpt2.IsSpecialToken(EndOfText));
    }

    [Fact]
    public void NonSpecialAddedTokenIsKeptOnDecode()
    {
        var ids = Gpt2.Encode("hello<|sep|> world");

        Assert.Equal([259, Separator, 266], ids);
        Assert.Equal("hello<|sep|> world", Gpt2.Decode(ids));
    }

    [Fact]
    public void SpecialTokenTextCanBeEncodedAsPlainText()
    {
        const string Text = "hello<|endoftext|> world";

        var ids = Gpt2.Encode(Text, parseSpecialTokens: false);

        Assert.DoesNotContain(EndOfText, ids);
        Assert.Equal(259, ids[0]);
        Assert.Equal(Text, Gpt2.Decode(ids));
    }

    [Fact]
    public void AddedTokenWithLStripAndRStripSwallowsSurroundingSpaces()
    {
        var json = JsonNode.Parse(ByteLevel())!;
        json["added_tokens"]![1]!["lstrip"] = true;
        json["added_tokens"]![1]!["rstrip"] = true;
        var tokenizer = HfTokenizer.FromJson(json.ToJsonString());

        // "world" without its leading space: w, or (263), ld (265).
        Assert.Equal([259, Separator, 119, 263, 265], tokenizer.Encode("hello <|sep|> world"));
    }

    [Fact]
    public void NfcNormalizerComposesAndLoneSurrogatesBecomeReplacementChars()
    {
        var tokenizer = HfTokenizer.FromJson(With(ByteLevel(), "normalizer", new JsonObject { ["type"] = "NFC" }));

        Assert.Equal([281], tokenizer.Encode("gru\u0308n")); // u + combining diaeresis → ü
        Assert.Equal(tokenizer.Encode("a\uFFFDb"), tokenizer.Encode("a\uD800b"));
    }

    [Fact]
    public void IgnoreMergesUsesWholeVocabularyWords()
    {
        // "Ġxyz" is in the vocabulary but no merge builds it: only ignore_merges (Llama 3) finds it.
        Assert.Equal([Xyz], Llama3.Encode(" xyz"));
        Assert.Equal([32, 120, 121, 122], Gpt2.Encode(" xyz"));
    }

    [Fact]
    public void Llama3LayoutWithPairMergesGivesTheSameIdsForMergeableText()
    {
        Assert.Equal([259, 261, 266], Llama3.Encode("hello the world"));
        Assert.Equal([282], Llama3.Encode(" grün"));
    }

    [Fact]
    public void DecodeOfIncompleteUtf8EndsInOneReplacementChar()
    {
        Assert.Equal("a\uFFFD", Gpt2.Decode([97, 0xF0, 0x9F]));
    }

    [Fact]
    public void ReadsSpecialTokensAndVocabSize()
    {
        Assert.Equal(Xyz + 1, Gpt2.VocabSize);
        Assert.Null(Gpt2.BosId);
        Assert.Equal(EndOfText, Gpt2.EosId);
        Assert.False(Gpt2.AddBosToken);
        Assert.Equal(266, Gpt2.TokenToId("Ġworld"));
        Assert.Equal("Ġworld", Gpt2.IdToToken(266));
    }
}
