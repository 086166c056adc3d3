namespace Pollen.Model.Checkpoints;

/// <summary>
/// A checkpoint file or directory cannot be used: it is missing, truncated, corrupt, or does not hold the
/// requested tensor. The message names the file, the tensor (when there is one), what is wrong and what to do.
/// </summary>
public sealed class CheckpointException : Exception
{
    /// <summary>Creates the exception with a generic message.</summary>
    public CheckpointException()
        : base("the checkpoint cannot be read")
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/>.</summary>
    public CheckpointException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/> caused by <paramref name="innerException"/>.</summary>
    public CheckpointException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>
    /// Creates the exception for a problem in <paramref name="filePath"/>, optionally about one tensor.
    /// The message reads "<c>path: tensor 'name': problem. Remedy.</c>"; the remedy is capitalized and ends with a period.
    /// </summary>
    /// <param name="filePath">The checkpoint file or directory.</param>
    /// <param name="tensorName">The tensor concerned, or null for file-level problems.</param>
    /// <param name="problem">What is wrong, without a trailing period.</param>
    /// <param name="remedy">What the user can do about it.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public CheckpointException(string filePath, string? tensorName, string problem, string remedy, Exception? innerException = null)
        : base(Format(filePath, tensorName, problem, remedy), innerException)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The checkpoint file or directory concerned, when known.</summary>
    public string? FilePath { get; }

    /// <summary>The tensor concerned, or null for file-level problems.</summary>
    public string? TensorName { get; }

    /// <summary>Remedy for a file whose bytes do not make a valid safetensors file.</summary>
    internal const string CorruptRemedy =
        "The file is corrupt, truncated or not a safetensors file; re-download it or save the checkpoint again.";

    private static string Format(string filePath, string? tensorName, string problem, string remedy)
    {
        // The remedy reads as its own sentence whatever the caller passed.
        remedy = remedy.Trim();
        if (remedy.Length > 0)
        {
            remedy = char.ToUpperInvariant(remedy[0]) + remedy[1..];
            if (!remedy.EndsWith('.') && !remedy.EndsWith('!') && !remedy.EndsWith('?'))
            {
                remedy += ".";
            }
        }
        var subject = tensorName is null ? filePath : $"{filePath}: tensor '{tensorName}'";
        return $"{subject}: {problem.TrimEnd('.')}. {remedy}".TrimEnd();
    }
}
