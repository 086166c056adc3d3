using Pollen.Model.Layers;
using static TorchSharp.torch;

namespace Pollen.Model.Llama;

/// <summary>A decoding session over a local <see cref="Transformer"/> with its own <see cref="KvCache"/>.</summary>
internal sealed class LocalDecodingSession(Transformer model, int maxLength) : IDecodingSession
{
    private readonly KvCache _cache = new(Math.Min(maxLength, model.Config.MaxPositionEmbeddings));

    public int Length => _cache.Length;

    public int MaxLength => _cache.MaxLength;

    public ValueTask<Tensor> ForwardAsync(Tensor ids, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = model.forward(ids, cache: _cache); // (B, T, V)
        return ValueTask.FromResult(logits.select(1, -1).MoveToOuterDisposeScope()); // (B, V)
    }

    public void Dispose() => _cache.Dispose();
}
