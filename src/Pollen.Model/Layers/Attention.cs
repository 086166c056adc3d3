using Pollen.Model.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>Llama attention with grouped-query heads and RoPE or ALiBi positions.</summary>
public sealed class Attention : AttentionBase
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;

    /// <summary>Creates the projections for <paramref name="config"/>.</summary>
    public Attention(ModelConfig config) : base(nameof(Attention), config, config.HeadDim)
    {
        long c = config.HiddenSize, q = config.NumAttentionHeads * config.HeadDim, kv = config.NumKeyValueHeads * config.HeadDim;
        q_proj = nn.Linear(c, q, hasBias: config.AttentionBias);
        k_proj = nn.Linear(c, kv, hasBias: config.AttentionBias);
        v_proj = nn.Linear(c, kv, hasBias: config.AttentionBias);
        o_proj = nn.Linear(q, c, hasBias: config.AttentionBias);
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override (Tensor Q, Tensor K, Tensor V) Project(Tensor x, Tensor positions)
    {
        long b = x.shape[0], t = x.shape[1];
        int hq = Config.NumAttentionHeads, hkv = Config.NumKeyValueHeads, d = Config.HeadDim;
        var q = q_proj.forward(x).view(b, t, hq, d).transpose(1, 2);  // (B, Hq, T, D)
        var k = k_proj.forward(x).view(b, t, hkv, d).transpose(1, 2); // (B, Hkv, T, D)
        var v = v_proj.forward(x).view(b, t, hkv, d).transpose(1, 2); // (B, Hkv, T, D)
        if (Rope is not null)
        {
            var (cos, sin) = Rope.Get(positions);
            q = RotaryEmbedding.Apply(q, cos, sin);
            k = RotaryEmbedding.Apply(k, cos, sin);
        }
        return (q, k, v);
    }

    /// <inheritdoc/>
    protected override Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, bool isCausal) => Sdpa(q, k, v, mask, isCausal);

    /// <inheritdoc/>
    protected override Tensor Output(Tensor heads) =>
        o_proj.forward(heads.transpose(1, 2).reshape(heads.shape[0], heads.shape[2], -1)); // (B, T, C)
}
