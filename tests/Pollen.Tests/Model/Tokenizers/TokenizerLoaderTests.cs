using System.Text.Json.Nodes;
using Pollen.Model.Tokenizers;
using static Pollen.Tests.Model.Tokenizers.TestTokenizerFiles;

namespace Pollen.Tests.Model.Tokenizers;

public sealed class TokenizerLoaderTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("pollen-tokenizer-tests-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void DirectoryWithoutTokenizerFilesGivesByteTokenizer()
    {
        File.WriteAllText(Path.Combine(_dir.FullName, "config.json"), "{}");

        Assert.IsType<ByteTokenizer>(TokenizerLoader.Load(_dir.FullName));
    }

    [Fact]
    public void SavedByteTokenizerLoadsBackAndLeavesNoTempFiles()
    {
        var target = Path.Combine(_dir.FullName, "checkpoint");

        TokenizerLoader.SaveByteTokenizer(target);
        TokenizerLoader.SaveByteTokenizer(target); // overwrites

        var file = Path.Combine(target, TokenizerLoader.PollenTokenizerFileName);
        Assert.Equal("byte", JsonNode.Parse(File.ReadAllText(file))!["type"]!.GetValue<string>());
        Assert.Equal([TokenizerLoader.PollenTokenizerFileName], Directory.GetFiles(target).Select(Path.GetFileName));
        Assert.IsType<ByteTokenizer>(TokenizerLoader.Load(target));
    }

    [Fact]
    public void UnknownPollenTokenizerTypeIsRejected()
    {
        File.WriteAllText(Path.Combine(_dir.FullName, TokenizerLoader.PollenTokenizerFileName), """{"type": "unigram"}""");

        var error = Assert.Throws<TokenizerException>(() => TokenizerLoader.Load(_dir.FullName));
        Assert.Contains("'unigram'", error.Message);
    }

    [Fact]
    public void TokenizerJsonGivesHfTokenizerWithConfigFiles()
    {
        File.WriteAllText(Path.Combine(_dir.FullName, HfTokenizer.TokenizerFileName), SentencePiece());
        File.WriteAllText(Path.Combine(_dir.FullName, HfTokenizer.SpecialTokensMapFileName), """{"bos_token": "<s>", "eos_token": "</s>"}""");
        File.WriteAllText(Path.Combine(_dir.FullName, TokenizerLoader.PollenTokenizerFileName), """{"type": "byte"}""");

        var tokenizer = Assert.IsType<HfTokenizer>(TokenizerLoader.Load(_dir.FullName));

        Assert.Equal([278, 283], tokenizer.Encode("hello world"));
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(2, tokenizer.EosId);
    }

    [Fact]
    public void SentencePieceModelWithoutTokenizerJsonIsRejected()
    {
        File.WriteAllBytes(Path.Combine(_dir.FullName, "tokenizer.model"), [0x0A, 0x00]);

        var error = Assert.Throws<TokenizerException>(() => TokenizerLoader.Load(_dir.FullName));
        Assert.Contains("tokenizer.model", error.Message);
        Assert.Contains("tokenizer.json", error.Message);
    }

    [Fact]
    public void MissingDirectoryIsReported()
    {
        Assert.Throws<DirectoryNotFoundException>(() => TokenizerLoader.Load(Path.Combine(_dir.FullName, "missing")));
    }

    [Fact]
    public void MalformedTokenizerJsonNamesTheFileAndDirectory()
    {
        File.WriteAllText(Path.Combine(_dir.FullName, HfTokenizer.TokenizerFileName), """{"model": {"type": "BPE", """);

        var error = Assert.Throws<TokenizerException>(() => TokenizerLoader.Load(_dir.FullName));
        Assert.Contains("tokenizer.json is not valid JSON", error.Message);
        Assert.Contains(_dir.FullName, error.Message);
    }

    [Theory]
    [InlineData("model.type", "Unigram", "model type 'Unigram' is not supported")]
    [InlineData("model.type", "WordPiece", "model type 'WordPiece' is not supported")]
    [InlineData("normalizer", """{"type": "Precompiled", "precompiled_charsmap": "AAAA"}""", "normalizer type 'Precompiled' is not supported")]
    [InlineData("pre_tokenizer", """{"type": "Whitespace"}""", "pre_tokenizer type 'Whitespace' is not supported")]
    [InlineData("decoder", """{"type": "WordPiece", "prefix": "##"}""", "decoder type 'WordPiece' is not supported")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "a++"}, "behavior": "Isolated", "invert": false}""", "regex 'a++' is not supported")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways", "invert": false}""", "behavior 'Sideways' is not one of")]
    [InlineData("model.merges", """["x y"]""", "the BPE model is inconsistent")]
    [InlineData("model.vocab", """{"a": "one"}""", "model.vocab.\"a\" must be an id")]
    [InlineData("model.continuing_subword_prefix", "##", "model.continuing_subword_prefix is not supported")]
    public void UnsupportedOrMalformedTokenizerJsonSaysWhat(string path, string value, string expectedMessage)
    {
        var node = value.StartsWith('{') || value.StartsWith('[') ? JsonNode.Parse(value) : JsonValue.Create(value);
        var json = With(SentencePiece(), path, node);

        var error = Assert.Throws<TokenizerException>(() => HfTokenizer.FromJson(json));
        Assert.Contains(expectedMessage, error.Message);
    }

    [Fact]
    public void ConfigNamingAMissingTokenIsRejected()
    {
        var error = Assert.Throws<TokenizerException>(() => HfTokenizer.FromJson(SentencePiece(), """{"eos_token": "<|im_end|>"}"""));

        Assert.Contains("eos_token '<|im_end|>'", error.Message);
    }
}
