using Pollen.Model.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>
/// Self-attention of one block: given hidden states (B, T, C), their positions (B, T) and optionally
/// the block's cache, returns (B, T, C). Causality is by position (a query sees keys at positions ≤
/// its own), so a cached step, a replay and a full forward agree.
/// </summary>
public abstract class AttentionBase : nn.Module
{
    private readonly float[]? _alibiSlopes;

    /// <summary>Creates the shared parts for <paramref name="config"/>.</summary>
    protected AttentionBase(string name, ModelConfig config, int ropeDim) : base(name)
    {
        Config = config;
        if (config.PositionEncoding == PositionEncoding.Rope)
        {
            Rope = RotaryEmbedding.Shared(ropeDim, config.RopeTheta, config.RopeScaling);
        }
        else
        {
            _alibiSlopes = Alibi.Slopes(config.NumAttentionHeads);
        }
    }

    /// <summary>The model's shape.</summary>
    protected ModelConfig Config { get; }

    /// <summary>The rotation, or null with ALiBi.</summary>
    protected RotaryEmbedding? Rope { get; }

    /// <summary>Runs attention; see the class summary.</summary>
    public abstract Tensor Forward(Tensor x, Tensor positions, LayerKvCache? cache);

    /// <summary>
    /// The attention mask for queries at <paramref name="queryPositions"/> (B, T) over keys at
    /// <paramref name="keyPositions"/> (B, S): null when plain causal order suffices (then
    /// <paramref name="isCausal"/> says whether SDPA must apply it), else a bool mask or, with ALiBi, a float
    /// bias (B, H, T, S) with −∞ on masked entries.
    /// </summary>
    protected Tensor? Mask(Tensor queryPositions, Tensor keyPositions, bool cached, out bool isCausal)
    {
        var t = queryPositions.shape[1];
        isCausal = false;
        if (_alibiSlopes is null)
        {
            if (!cached)
            {
                isCausal = t > 1;
                return null;
            }
            if (t == 1)
            {
                return null; // a single new token sees every cached key
            }
        }
        var allowed = (keyPositions.unsqueeze(1) <= queryPositions.unsqueeze(2)).unsqueeze(1); // (B, 1, T, S)
        if (_alibiSlopes is null)
        {
            return allowed;
        }
        var bias = Alibi.Bias(tensor(_alibiSlopes), queryPositions, keyPositions); // (B, H, T, S)
        return bias.masked_fill(allowed.logical_not(), float.NegativeInfinity);
    }

    /// <summary>Repeats each key/value head for the query heads of its group (B, Hkv, S, D) → (B, Hq, S, D).</summary>
    protected Tensor RepeatKv(Tensor x) =>
        Config.KvGroups == 1 ? x : x.repeat_interleave(Config.KvGroups, dim: 1);

    /// <summary>Scaled dot-product attention.</summary>
    protected static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor? mask, bool isCausal) =>
        nn.functional.scaled_dot_product_attention(q, k, v, mask, 0.0, isCausal);

    /// <summary>Creates the attention <paramref name="config"/> asks for.</summary>
    public static AttentionBase Create(ModelConfig config, int layerIndex) => config.Attention switch
    {
        AttentionKind.Standard => new Attention(config),
        AttentionKind.Differential => new DifferentialAttention(config, layerIndex),
        _ => throw new ArgumentOutOfRangeException(nameof(config), config.Attention, "unknown attention kind"),
    };
}
