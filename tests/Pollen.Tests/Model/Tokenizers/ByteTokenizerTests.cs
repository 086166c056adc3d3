using System.Diagnostics;
using System.Text;
using Pollen.Model.Tokenizers;

namespace Pollen.Tests.Model.Tokenizers;

public sealed class ByteTokenizerTests
{
    private readonly ByteTokenizer _tokenizer = ByteTokenizer.Instance;

    [Theory]
    [InlineData("Hello, world!")]
    [InlineData("Grüße aus München, Äpfel und Öl")]
    [InlineData("Привет, мир")]
    [InlineData("你好，世界")]
    [InlineData("مرحبا بالعالم")]
    [InlineData("🙂👍🏽 👨‍👩‍👧")]
    [InlineData("tabs\tand\nnewlines\r\n  ")]
    [InlineData("")]
    public void RoundTripsTextInManyScripts(string text)
    {
        var ids = _tokenizer.Encode(text);

        Assert.Equal(Encoding.UTF8.GetByteCount(text), ids.Length);
        Assert.All(ids, id => Assert.InRange(id, 0, 255));
        Assert.Equal(text, _tokenizer.Decode(ids));
    }

    [Fact]
    public void EncodesUtf8Bytes()
    {
        Assert.Equal([0x41, 0xC3, 0xBC, 0xF0, 0x9F, 0x99, 0x82], _tokenizer.Encode("Aü🙂"));
    }

    [Fact]
    public void DescribesItsVocabulary()
    {
        Assert.Equal(259, _tokenizer.VocabSize);
        Assert.Equal(256, _tokenizer.BosId);
        Assert.Equal(257, _tokenizer.EosId);
        Assert.Equal(258, ByteTokenizer.PadTokenId);
        Assert.True(ByteTokenizer.IsSpecial(ByteTokenizer.PadTokenId));
        Assert.False(ByteTokenizer.IsSpecial(255));
    }

    [Fact]
    public void SpecialTokenTextIsEncodedAsPlainBytes()
    {
        var ids = _tokenizer.Encode("<|eos|>");

        Assert.Equal(7, ids.Length);
        Assert.DoesNotContain(ByteTokenizer.EosTokenId, ids);
    }

    [Fact]
    public void DecodeSkipsSpecialAndOutOfRangeIds()
    {
        int[] ids = [ByteTokenizer.BosTokenId, 'H', ByteTokenizer.PadTokenId, 'i', ByteTokenizer.EosTokenId, 263, -1];

        Assert.Equal("Hi", _tokenizer.Decode(ids));
    }

    [Fact]
    public void IncompleteUtf8AtTheEndBecomesOneReplacementChar()
    {
        var ids = _tokenizer.Encode("a你"); // 你 = E4 BD A0

        Assert.Equal("a\uFFFD", _tokenizer.Decode(ids.AsSpan(0, ids.Length - 1)));
        Assert.Equal("a\uFFFD", _tokenizer.Decode(ids.AsSpan(0, ids.Length - 2)));
    }

    [Fact]
    public void InvalidUtf8InTheMiddleBecomesReplacementChar()
    {
        Assert.Equal("a\uFFFDb", _tokenizer.Decode([(int)'a', 0xFF, (int)'b']));
        Assert.Equal("\uFFFD\uFFFD", _tokenizer.Decode([0x80, 0x80]));
    }

    [Fact]
    public void LoneSurrogateEncodesAsReplacementChar()
    {
        Assert.Equal([0xEF, 0xBF, 0xBD], _tokenizer.Encode("\uD800"));
    }

    [Fact]
    public void EncodesTenMegabytesInSeconds()
    {
        var text = new StringBuilder().Insert(0, "Grüße, мир! 你好 🙂 plain ascii text. ", 300_000).ToString();
        var expectedLength = Encoding.UTF8.GetByteCount(text);
        Assert.True(expectedLength > 10_000_000);
        _tokenizer.Encode("warm up");

        var watch = Stopwatch.StartNew();
        var ids = _tokenizer.Encode(text);
        watch.Stop();

        Assert.Equal(expectedLength, ids.Length);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4), $"Encode of {expectedLength} bytes took {watch.Elapsed}");
    }
}
