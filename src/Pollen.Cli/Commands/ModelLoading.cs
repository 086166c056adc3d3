using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;

namespace Pollen.Cli.Commands;

/// <summary>Opens a checkpoint directory for the commands that use one.</summary>
internal static class ModelLoading
{
    /// <summary>The <c>--dtype</c> option: the weights' precision in memory.</summary>
    public static System.CommandLine.Option<string> DtypeOption() => new("--dtype")
    {
        Description = "Weights in memory: f32 (exact), bf16 (about half the memory and faster decoding on CPUs with bf16 support; logits differ by ~1e-2) or f16.",
        DefaultValueFactory = _ => "f32",
    };

    public static TorchSharp.torch.ScalarType ParseDtype(string? text) => text switch
    {
        "f32" or "float32" => TorchSharp.torch.ScalarType.Float32,
        "bf16" or "bfloat16" => TorchSharp.torch.ScalarType.BFloat16,
        "f16" or "float16" => TorchSharp.torch.ScalarType.Float16,
        _ => throw new UsageException($"--dtype {text}: choose f32, bf16 or f16"),
    };

    /// <summary>The model id a checkpoint directory goes by when --model-id is not given: its name.</summary>
    public static string DefaultModelId(string directory) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)));

    public static (Transformer Model, ITokenizer? Tokenizer) Load(string? directory, TorchSharp.torch.ScalarType dtype = TorchSharp.torch.ScalarType.Float32)
    {
        if (string.IsNullOrWhiteSpace(directory))
        {
            throw new UsageException("--model DIR is required: a checkpoint directory (config.json + model.safetensors), e.g. the --out of 'pollen train'");
        }
        if (!Directory.Exists(directory))
        {
            throw new UsageException($"--model {directory}: no such directory");
        }
        var model = ModelCheckpoint.Load(directory, dtype);
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
