using Pollen.Inference.Client;
using Pollen.Model;
using Pollen.Model.Tokenizers;

namespace Pollen.Cli.Commands;

/// <summary>Opens a model whose blocks run on block servers, for the commands that take <c>--servers</c>.</summary>
internal static class SwarmLoading
{
    public static (ICausalLM Model, ITokenizer? Tokenizer) Load(string? directory, IReadOnlyList<string> servers, TorchSharp.torch.ScalarType dtype)
    {
        if (string.IsNullOrWhiteSpace(directory) || !Directory.Exists(directory))
        {
            throw new UsageException("--model DIR is required with --servers: the checkpoint the embedding, head and tokenizer are read from");
        }
        List<ServerSpan> spans;
        try
        {
            spans = [.. servers.Select(ServerSpan.Parse)];
        }
        catch (FormatException e)
        {
            throw new UsageException($"--servers: {e.Message}");
        }
        var ends = ModelEnds.Load(directory, dtype);
        return (new SwarmModel(ends, spans), ModelLoading.TokenizerFor(directory, ends.Config));
    }
}
