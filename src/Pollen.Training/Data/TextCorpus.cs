using System.Text;
using System.Text.Json;

namespace Pollen.Training.Data;

/// <summary>
/// Loads training documents from a file or a directory (searched recursively) of <c>.txt</c> and
/// <c>.jsonl</c> files, read in ordinal path order so the same tree always gives the same documents.
/// </summary>
/// <remarks>
/// A <c>.txt</c> file is one document, or several separated by lines holding only
/// <see cref="EndOfTextLine"/>. Each non-blank line of a <c>.jsonl</c> file is a JSON object whose
/// <c>"text"</c> string is one document. Files are read as UTF-8; line endings become <c>\n</c>, and
/// documents that are empty or only whitespace are skipped. Everything is held in memory.
/// </remarks>
public static class TextCorpus
{
    /// <summary>The line that separates documents inside a <c>.txt</c> file.</summary>
    public const string EndOfTextLine = "<|endoftext|>";

    private const string WhatToPass = "pass a .txt or .jsonl file, or a directory that holds such files";

    /// <summary>All documents under <paramref name="path"/>, file by file in <see cref="FindFiles"/> order.</summary>
    /// <exception cref="DataException">The path is missing, holds no corpus files or no documents, or a
    /// <c>.jsonl</c> line is malformed.</exception>
    public static IReadOnlyList<string> Load(string path)
    {
        var documents = new List<string>();
        foreach (var file in FindFiles(path))
        {
            documents.AddRange(ReadFile(file));
        }

        if (documents.Count == 0)
        {
            throw new DataException($"The corpus at '{path}' holds no documents (every file is empty); {WhatToPass} with some text in it.");
        }

        return documents;
    }

    /// <summary>
    /// The corpus files at <paramref name="path"/>: the file itself, or every <c>.txt</c> and <c>.jsonl</c>
    /// file under the directory, sorted by full path (ordinal).
    /// </summary>
    /// <exception cref="DataException">The path does not exist, is a file of another type, or is a directory
    /// with no corpus files.</exception>
    public static IReadOnlyList<string> FindFiles(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (File.Exists(path))
        {
            if (!IsCorpusFile(path))
            {
                throw new DataException($"Corpus file '{path}' is neither .txt nor .jsonl; {WhatToPass}.");
            }

            return [Path.GetFullPath(path)];
        }

        if (!Directory.Exists(path))
        {
            throw new DataException($"Corpus path '{path}' does not exist; {WhatToPass}.");
        }

        var files = Directory.EnumerateFiles(Path.GetFullPath(path), "*", SearchOption.AllDirectories)
            .Where(IsCorpusFile)
            .Order(StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
        {
            throw new DataException($"Directory '{path}' holds no .txt or .jsonl files; {WhatToPass}.");
        }

        return files;
    }

    /// <summary>The documents of one <c>.txt</c> or <c>.jsonl</c> file, read lazily.</summary>
    /// <exception cref="DataException">A <c>.jsonl</c> line is not a JSON object with a <c>"text"</c> string;
    /// the message names the file and the 1-based line number.</exception>
    public static IEnumerable<string> ReadFile(string file) =>
        file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) ? ReadJsonLines(file) : ReadText(file);

    private static bool IsCorpusFile(string file) =>
        file.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);

    private static IEnumerable<string> ReadText(string file)
    {
        var document = new StringBuilder();
        var lines = 0;
        foreach (var line in File.ReadLines(file, Encoding.UTF8))
        {
            if (line.Trim() == EndOfTextLine)
            {
                if (TryTake(document, out var text))
                {
                    yield return text;
                }

                lines = 0;
                continue;
            }

            if (lines++ > 0)
            {
                document.Append('\n');
            }

            document.Append(line);
        }

        if (TryTake(document, out var last))
        {
            yield return last;
        }
    }

    private static bool TryTake(StringBuilder document, out string text)
    {
        text = document.ToString();
        document.Clear();
        return !string.IsNullOrWhiteSpace(text);
    }

    private static IEnumerable<string> ReadJsonLines(string file)
    {
        var number = 0;
        foreach (var line in File.ReadLines(file, Encoding.UTF8))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            var text = ParseJsonLine(line, file, number);
            if (!string.IsNullOrWhiteSpace(text))
            {
                yield return text;
            }
        }
    }

    private static string ParseJsonLine(string line, string file, int number)
    {
        const string Expected = "each line of a .jsonl corpus must be a JSON object with a \"text\" string, e.g. {\"text\": \"Once upon a time...\"}";
        JsonDocument json;
        try
        {
            json = JsonDocument.Parse(line);
        }
        catch (JsonException ex)
        {
            throw new DataException($"{file}:{number}: not valid JSON ({ex.Message}); {Expected}.", ex);
        }

        using (json)
        {
            if (json.RootElement.ValueKind != JsonValueKind.Object
                || !json.RootElement.TryGetProperty("text", out var text)
                || text.ValueKind != JsonValueKind.String)
            {
                throw new DataException($"{file}:{number}: no \"text\" string; {Expected}.");
            }

            return text.GetString()!;
        }
    }
}
