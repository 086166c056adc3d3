namespace Pollen.Swarm;

/// <summary>The swarm could not be reached for an operation; the message says what to check.</summary>
public sealed class SwarmUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SwarmUnavailableException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public SwarmUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public SwarmUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
