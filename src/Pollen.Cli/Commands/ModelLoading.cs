using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;

namespace Pollen.Cli.Commands;

/// <summary>Opens a checkpoint directory for the commands that use one.</summary>
internal static class ModelLoading
{
    public static (Transformer Model, ITokenizer? Tokenizer) Load(string? directory)
    {
        if (string.IsNullOrWhiteSpace(directory))
        {
            throw new UsageException("--model DIR is required: a checkpoint directory (config.json + model.safetensors), e.g. the --out of 'pollen train'");
        }
        if (!Directory.Exists(directory))
        {
            throw new UsageException($"--model {directory}: no such directory");
        }
        var model = ModelCheckpoint.Load(directory);
        return (model, TokenizerFor(directory, model.Config));
    }

    /// <summary>
    /// The checkpoint's tokenizer; a directory without tokenizer files gets the byte tokenizer only when
    /// the model has the byte vocabulary (otherwise null: ids work, text does not).
    /// </summary>
    public static ITokenizer? TokenizerFor(string directory, ModelConfig config)
    {
        var hasFiles = File.Exists(Path.Combine(directory, "tokenizer.json"))
            || File.Exists(Path.Combine(directory, TokenizerLoader.PollenTokenizerFileName));
        if (!hasFiles && config.VocabSize != ModelPresets.ByteVocabSize)
        {
            return null;
        }
        return TokenizerLoader.Load(directory);
    }
}
