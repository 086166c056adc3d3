using Pollen.Model.Layers;
using Pollen.Model.Runtime;
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
        // one-token steps with low-precision weights run faster without oneDNN (see OneDnn)
        using var dnn = ids.shape[1] == 1 && model.Dtype != ScalarType.Float32 ? OneDnn.Suspend() : default;
        var logits = model.forward(ids, cache: _cache); // (B, T, V)
        return ValueTask.FromResult(logits.select(1, -1).MoveToOuterDisposeScope()); // (B, V)
    }

    public void Dispose() => _cache.Dispose();
}
