namespace Pollen.Model.Tokenizers;

/// <summary>
/// A tokenizer could not be loaded: a tokenizer file is malformed, or it uses a feature Pollen does not
/// support. The message names the file and the offending setting.
/// </summary>
public sealed class TokenizerException : Exception
{
    /// <summary>Creates the exception with a default message.</summary>
    public TokenizerException()
        : base("The tokenizer could not be loaded.")
    {
    }

    /// <summary>Creates the exception with a message saying what is wrong.</summary>
    public TokenizerException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the error that caused it.</summary>
    public TokenizerException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
