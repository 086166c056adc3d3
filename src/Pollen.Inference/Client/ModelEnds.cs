using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pollen.Inference.Client;

/// <summary>
/// The parts of a model a swarm client runs itself: token embedding, final norm and LM head — loaded
/// without reading any block's weights. Computes exactly what <see cref="Model.Llama.Transformer.Embed"/>
/// and <see cref="Model.Llama.Transformer.Head"/> compute.
/// </summary>
public sealed class ModelEnds : nn.Module
{
    private readonly Embedding _embedTokens;
    private readonly RmsNorm _norm;
    private readonly Linear? _lmHead;

    private ModelEnds(ModelConfig config) : base(nameof(ModelEnds))
    {
        Config = config;
        _embedTokens = nn.Embedding(config.VocabSize, config.HiddenSize);
        _norm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        if (!config.TieWordEmbeddings)
        {
            _lmHead = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        }
        RegisterComponents();
    }

    /// <summary>The model's shape.</summary>
    public ModelConfig Config { get; }

    /// <summary>Dtype of the weights.</summary>
    public ScalarType Dtype => _embedTokens.weight!.dtype;

    /// <summary>Loads embedding, norm and head from a checkpoint directory.</summary>
    public static ModelEnds Load(string directory, ScalarType dtype = ScalarType.Float32)
    {
        var ends = new ModelEnds(ModelConfig.Load(directory));
        if (dtype != ScalarType.Float32)
        {
            ends.to(dtype);
        }
        using var weights = ShardedSafeTensors.Open(directory);
        ModelCheckpoint.LoadInto(ends._embedTokens, "model.embed_tokens.", weights, directory, null);
        ModelCheckpoint.LoadInto(ends._norm, "model.norm.", weights, directory, null);
        if (ends._lmHead is not null)
        {
            ModelCheckpoint.LoadInto(ends._lmHead, "lm_head.", weights, directory, null);
        }
        ends.eval();
        return ends;
    }

    /// <summary>
    /// Copies embedding, final norm and head from <paramref name="weights"/>, named as in a checkpoint
    /// (<c>model.embed_tokens.weight</c>, <c>model.norm.weight</c>, <c>lm_head.weight</c>), e.g. a training
    /// model's <c>named_parameters</c>.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor is missing or has another shape.</exception>
    public void CopyFrom(IReadOnlyDictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        Copy(_embedTokens, "model.embed_tokens.");
        Copy(_norm, "model.norm.");
        if (_lmHead is not null)
        {
            Copy(_lmHead, "lm_head.");
        }

        void Copy(nn.Module module, string prefix)
        {
            foreach (var (name, parameter) in module.named_parameters())
            {
                if (!weights.TryGetValue(prefix + name, out var value) || !value.shape.SequenceEqual(parameter.shape))
                {
                    throw new ArgumentException($"'{prefix}{name}' is missing or has another shape", nameof(weights));
                }
                parameter.copy_(value);
            }
        }
    }

    /// <summary>Token ids (B, T) → hidden states (B, T, C).</summary>
    public Tensor Embed(Tensor ids) => _embedTokens.forward(ids);

    /// <summary>Hidden states (B, T, C) → logits (B, T, V) in float32.</summary>
    public Tensor Head(Tensor hidden)
    {
        var h = _norm.forward(hidden.to_type(Dtype));
        var logits = _lmHead is null ? h.matmul(_embedTokens.weight!.t()) : _lmHead.forward(h);
        return logits.to(float32);
    }
}
