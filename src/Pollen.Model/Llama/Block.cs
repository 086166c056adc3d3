using Pollen.Model.Config;
using Pollen.Model.Layers;
using Pollen.Model.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Model.Llama;

/// <summary>
/// One decoder block — the unit of distribution. RMSNorm → attention → residual → RMSNorm → SwiGLU →
/// residual. It runs alone given hidden states, positions and an optional per-session cache; it holds
/// no reference to the rest of the model, so a server can host blocks i..j of a model by themselves.
/// Parameter names are those under <c>model.layers.{i}.</c> in a Hugging Face Llama checkpoint.
/// </summary>
public sealed class Block : nn.Module
{
    private readonly RmsNorm input_layernorm;
    private readonly AttentionBase self_attn;
    private readonly RmsNorm post_attention_layernorm;
    private readonly SwiGluMlp mlp;

    /// <summary>Creates block <paramref name="layerIndex"/> of a model shaped by <paramref name="config"/>.</summary>
    public Block(ModelConfig config, int layerIndex) : base($"{nameof(Block)}{layerIndex}")
    {
        config.Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(layerIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layerIndex, config.NumHiddenLayers);
        LayerIndex = layerIndex;
        Config = config;
        input_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        self_attn = AttentionBase.Create(config, layerIndex);
        post_attention_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        mlp = new SwiGluMlp(config.HiddenSize, config.IntermediateSize, config.MlpBias);
        RegisterComponents();
    }

    /// <summary>Index of this block in the model (its cache slot and checkpoint prefix).</summary>
    public int LayerIndex { get; }

    /// <summary>The model's shape.</summary>
    public ModelConfig Config { get; }

    /// <summary>The checkpoint prefix of this block's tensors, e.g. <c>model.layers.3.</c>.</summary>
    public string CheckpointPrefix => CheckpointPrefixOf(LayerIndex);

    /// <summary>The checkpoint prefix of block <paramref name="layerIndex"/>.</summary>
    public static string CheckpointPrefixOf(int layerIndex) => $"model.layers.{layerIndex}.";

    /// <summary>
    /// Runs the block on hidden states (B, T, C) at positions (B, T) (int64); with a cache, the new keys and
    /// values are appended to slot <see cref="LayerIndex"/> and attention covers every cached token.
    /// </summary>
    public Tensor forward(Tensor hidden, Tensor positions, KvCache? cache = null)
    {
        var h = hidden.Plus(self_attn.Forward(input_layernorm.forward(hidden), positions, cache?.Layer(LayerIndex))); // (B, T, C)
        return h.Plus(mlp.forward(post_attention_layernorm.forward(h))); // (B, T, C)
    }

    /// <summary>
    /// One step for N sessions at once: row i of <paramref name="hidden"/> (N, T, C) and
    /// <paramref name="positions"/> (N, T) continues the session cached in <paramref name="caches"/>[i].
    /// The projections and the MLP see all rows together (the weights are read once), attention runs
    /// per session; the result equals N separate calls of <see cref="forward"/>.
    /// </summary>
    public Tensor ForwardSessions(Tensor hidden, Tensor positions, IReadOnlyList<KvCache> caches)
    {
        var layers = caches.Select(c => c.Layer(LayerIndex)).ToArray();
        var h = hidden.Plus(self_attn.ForwardSessions(input_layernorm.forward(hidden), positions, layers)); // (N, T, C)
        return h.Plus(mlp.forward(post_attention_layernorm.forward(h))); // (N, T, C)
    }

    /// <summary>
    /// Stores every linear weight column-major: each (out, in) weight becomes the transpose of a contiguous
    /// (in, out) tensor, so <c>x·Wᵀ</c> multiplies by a contiguous matrix. Values and names are unchanged;
    /// with one thread for tensor math, steps of several rows then run ~2× faster (one row as fast as before).
    /// </summary>
    public void UseColumnMajorWeights()
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in named_modules())
        {
            if (module is TorchSharp.Modules.Linear linear && linear.weight is { } weight && weight.is_contiguous() && weight.dim() == 2)
            {
                using var scope = NewDisposeScope();
                var columnMajor = new TorchSharp.Modules.Parameter(weight.t().contiguous().t(), requires_grad: weight.requires_grad);
                columnMajor.DetachFromDisposeScope();
                linear.weight = columnMajor;
                weight.Dispose();
            }
        }
    }
}
