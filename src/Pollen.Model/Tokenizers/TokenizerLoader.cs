using System.Text.Json;

namespace Pollen.Model.Tokenizers;

/// <summary>
/// Picks the tokenizer for a checkpoint directory. The rule, in order:
/// <list type="number">
/// <item><c>tokenizer.json</c> exists → <see cref="HfTokenizer"/> (a Hugging Face checkpoint).</item>
/// <item><c>pollen_tokenizer.json</c> exists → the tokenizer it names; today only <c>{"type": "byte"}</c>,
/// which gives <see cref="ByteTokenizer"/>.</item>
/// <item>Only Hugging Face files this loader cannot read (<c>tokenizer.model</c>, <c>vocab.json</c>,
/// <c>merges.txt</c>) → <see cref="TokenizerException"/>, rather than silently using bytes for a model
/// trained on another vocabulary.</item>
/// <item>No tokenizer file at all → <see cref="ByteTokenizer"/> (the default for models trained by Pollen).</item>
/// </list>
/// </summary>
public static class TokenizerLoader
{
    /// <summary>The file Pollen writes next to checkpoints it trains, naming their tokenizer.</summary>
    public const string PollenTokenizerFileName = "pollen_tokenizer.json";

    /// <summary>The <c>type</c> value in <see cref="PollenTokenizerFileName"/> for <see cref="ByteTokenizer"/>.</summary>
    public const string ByteTokenizerType = "byte";

    private static readonly string[] UnreadableFiles = ["tokenizer.model", "vocab.json", "merges.txt"];

    /// <summary>Loads the tokenizer for <paramref name="checkpointDir"/> by the rule in the class summary.</summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="TokenizerException">A tokenizer file is malformed or unsupported.</exception>
    public static ITokenizer Load(string checkpointDir)
    {
        ArgumentNullException.ThrowIfNull(checkpointDir);
        if (!Directory.Exists(checkpointDir))
        {
            throw new DirectoryNotFoundException($"Checkpoint directory '{checkpointDir}' does not exist.");
        }

        if (File.Exists(Path.Combine(checkpointDir, HfTokenizer.TokenizerFileName)))
        {
            return HfTokenizer.Load(checkpointDir);
        }

        var pollenFile = Path.Combine(checkpointDir, PollenTokenizerFileName);
        if (File.Exists(pollenFile))
        {
            return LoadPollenTokenizer(pollenFile);
        }

        foreach (var name in UnreadableFiles)
        {
            if (File.Exists(Path.Combine(checkpointDir, name)))
            {
                throw new TokenizerException(
                    $"'{checkpointDir}' has {name} but no {HfTokenizer.TokenizerFileName}; Pollen reads only {HfTokenizer.TokenizerFileName}. " +
                    $"Save the tokenizer with Hugging Face's fast tokenizer (tokenizer.save_pretrained) to produce it.");
            }
        }

        return ByteTokenizer.Instance;
    }

    /// <summary>
    /// Writes <c>pollen_tokenizer.json</c> = <c>{"type": "byte"}</c> into <paramref name="dir"/> (created if
    /// missing), atomically: readers see the old file or the new one, never a partial file.
    /// </summary>
    public static void SaveByteTokenizer(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, PollenTokenizerFileName);
        var temp = Path.Combine(dir, $".{PollenTokenizerFileName}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
                {
                    writer.WriteStartObject();
                    writer.WriteString("type", ByteTokenizerType);
                    writer.WriteEndObject();
                }

                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static ByteTokenizer LoadPollenTokenizer(string path)
    {
        string? type;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            type = document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("type", out var value)
                && value.ValueKind == JsonValueKind.String
                    ? value.GetString()
                    : null;
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"'{path}' is not valid JSON: {e.Message}", e);
        }

        return type switch
        {
            ByteTokenizerType => ByteTokenizer.Instance,
            null => throw new TokenizerException($"'{path}' must be an object with a string \"type\" (e.g. {{\"type\": \"{ByteTokenizerType}\"}})."),
            _ => throw new TokenizerException($"'{path}' names tokenizer type '{type}'; this version of Pollen knows only '{ByteTokenizerType}'."),
        };
    }
}
