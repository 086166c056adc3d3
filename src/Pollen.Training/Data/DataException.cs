namespace Pollen.Training.Data;

/// <summary>
/// A training corpus or dataset cannot be used as given: a missing path, a malformed <c>.jsonl</c> line
/// (the message names the file and line), or too little text for the sequence length. The message says
/// what to pass instead.
/// </summary>
public sealed class DataException : Exception
{
    /// <summary>Creates the exception with a generic message.</summary>
    public DataException()
        : base("The training data cannot be used.")
    {
    }

    /// <summary>Creates the exception with a message saying what is wrong and what to do.</summary>
    public DataException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the error that caused it.</summary>
    public DataException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
