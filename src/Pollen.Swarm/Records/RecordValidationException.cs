namespace Pollen.Swarm.Records;

/// <summary>A record entry was refused; <see cref="Error"/> says why, the message says what to change.</summary>
public sealed class RecordValidationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RecordValidationException(RecordError error, string message)
        : base(message) => Error = error;

    /// <summary>Creates the exception (serialization-style constructor set; prefer the typed one).</summary>
    public RecordValidationException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public RecordValidationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public RecordValidationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>What was wrong.</summary>
    public RecordError Error { get; }
}
