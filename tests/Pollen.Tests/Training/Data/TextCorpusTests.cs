using Pollen.Training.Data;
using Xunit;

namespace Pollen.Tests.Training.Data;

public sealed class TextCorpusTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("pollen-corpus-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void LoadsTxtAndJsonlRecursivelyInPathOrder()
    {
        Write("b/inner.jsonl", "{\"text\": \"json one\"}\n\n{\"text\": \"json\\ntwo\", \"id\": 7}\n");
        Write("a.txt", "first line\r\nsecond line\n<|endoftext|>\n  \n<|endoftext|>\nthird doc\n");
        Write("c.TXT", "whole file");
        Write("notes.md", "not a corpus file");
        Write("b/empty.txt", "");

        var documents = TextCorpus.Load(_root);

        Assert.Equal(["first line\nsecond line", "third doc", "json one", "json\ntwo", "whole file"], documents);
        Assert.Equal(
            ["a.txt", "b/empty.txt", "b/inner.jsonl", "c.TXT"],
            TextCorpus.FindFiles(_root).Select(f => Path.GetRelativePath(_root, f).Replace('\\', '/')));
    }

    [Fact]
    public void LoadsASingleFile()
    {
        var file = Write("one.jsonl", "{\"text\": \"only\"}");
        Assert.Equal(["only"], TextCorpus.Load(file));
    }

    [Theory]
    [InlineData("{\"text\": \"fine\"}\nnot json at all\n", 2, "not valid JSON")]
    [InlineData("\n{\"text\": \"fine\"}\n\n{\"title\": \"no text\"}\n", 4, "no \"text\" string")]
    [InlineData("{\"text\": 42}\n", 1, "no \"text\" string")]
    [InlineData("[\"text\"]\n", 1, "no \"text\" string")]
    public void BadJsonlLineNamesFileAndLine(string content, int line, string problem)
    {
        var file = Write("sub/bad.jsonl", content);

        var error = Assert.Throws<DataException>(() => TextCorpus.Load(_root));

        Assert.Contains($"{file}:{line}:", error.Message, StringComparison.Ordinal);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingPathSaysWhatToPass()
    {
        var missing = Path.Combine(_root, "nope");
        var error = Assert.Throws<DataException>(() => TextCorpus.Load(missing));
        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
        Assert.Contains(".txt or .jsonl", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DirectoryWithoutCorpusFilesIsRejected()
    {
        Write("readme.md", "hello");
        var error = Assert.Throws<DataException>(() => TextCorpus.Load(_root));
        Assert.Contains("no .txt or .jsonl files", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FileOfAnotherTypeIsRejected()
    {
        var file = Write("data.csv", "a,b");
        var error = Assert.Throws<DataException>(() => TextCorpus.Load(file));
        Assert.Contains("neither .txt nor .jsonl", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CorpusWithOnlyEmptyDocumentsIsRejected()
    {
        Write("blank.txt", "  \n<|endoftext|>\n\n");
        var error = Assert.Throws<DataException>(() => TextCorpus.Load(_root));
        Assert.Contains("no documents", error.Message, StringComparison.Ordinal);
    }

    private string Write(string relativePath, string content)
    {
        var path = Path.Combine(_root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }
}
