using Pollen.Model.Config;
using static TorchSharp.torch;

namespace Pollen.Model;

/// <summary>
/// A causal language model that generation can drive: local (<see cref="Llama.Transformer"/>) or, later,
/// one whose blocks run on other machines.
/// </summary>
public interface ICausalLM
{
    /// <summary>The model's shape.</summary>
    ModelConfig Config { get; }

    /// <summary>Opens a decoding session holding at most <paramref name="maxLength"/> tokens.</summary>
    IDecodingSession OpenSession(int maxLength);
}

/// <summary>One incremental decoding session: each call feeds the next tokens and returns their logits.</summary>
public interface IDecodingSession : IDisposable
{
    /// <summary>Tokens fed so far.</summary>
    int Length { get; }

    /// <summary>The most tokens this session holds.</summary>
    int MaxLength { get; }

    /// <summary>
    /// Feeds token ids (B, T) at positions Length..Length+T-1 and returns the logits of the last position
    /// (B, V), float32, owned by the caller.
    /// </summary>
    ValueTask<Tensor> ForwardAsync(Tensor ids, CancellationToken cancellationToken = default);
}
