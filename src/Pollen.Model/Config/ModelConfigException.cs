namespace Pollen.Model.Config;

/// <summary>A model configuration is missing a key, has a value of the wrong type, or is inconsistent.</summary>
public sealed class ModelConfigException : Exception
{
    /// <summary>Creates the exception for <paramref name="key"/>.</summary>
    public ModelConfigException(string key, string message)
        : base($"config key '{key}': {message}") => Key = key;

    /// <summary>Creates the exception for a whole file that cannot be read.</summary>
    public ModelConfigException(string message, Exception? inner = null)
        : base(message, inner) => Key = "";

    /// <summary>The offending key (empty for file-level errors).</summary>
    public string Key { get; }
}
