using System.Text;

namespace Pollen.Model.Checkpoints;

/// <summary>
/// Replaces a file all at once: content goes to a temporary file in the same directory, is flushed to disk,
/// then renamed over the target. Readers see either the old file or the complete new one, never a torn write;
/// if writing fails the temporary file is deleted and the old file is untouched. Temporary files are named
/// <c>NAME.RANDOM.pollen-tmp</c>; one left behind by a crash can be deleted.
/// </summary>
public static class AtomicFile
{
    /// <summary>Suffix of temporary files (ignored by the repository's .gitignore).</summary>
    public const string TempSuffix = ".pollen-tmp";

    private const int BufferBytes = 1 << 20;

    /// <summary>Creates or replaces <paramref name="path"/> with what <paramref name="write"/> writes to the stream.</summary>
    /// <param name="path">The target file; its directory must exist.</param>
    /// <param name="write">Writes the whole content. If it throws, the target keeps its old content.</param>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var target = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(target)
            ?? throw new ArgumentException($"'{path}' is a root directory, not a file", nameof(path));
        var temp = Path.Combine(directory, $"{Path.GetFileName(target)}.{Guid.NewGuid():N}{TempSuffix}");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferBytes))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, target, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Creates or replaces <paramref name="path"/> with <paramref name="text"/> as UTF-8 (no byte order mark).</summary>
    public static void WriteAllText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text);
        WriteAllBytes(path, bytes);
    }

    /// <summary>Creates or replaces <paramref name="path"/> with <paramref name="bytes"/>.</summary>
    public static void WriteAllBytes(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        Write(path, stream => stream.Write(bytes));
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: the original error matters more than a leftover temporary file.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
