using Pollen.Model.Config;
using Pollen.Model.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>
/// Differential attention (Ye et al., 2024, "Differential Transformer"). Each head splits its query and
/// key dimensions in halves a and b, computes two softmax maps and returns
/// <c>(softmax(q_a k_aᵀ/√d) − λ·softmax(q_b k_bᵀ/√d)) v</c>, normalized per head (RMSNorm
/// <c>subln</c>) and scaled by <c>1 − λ_init</c>. λ is learned as
/// <c>exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init</c> with <c>λ_init = 0.8 − 0.6·exp(−0.3·layer)</c>.
/// Because the map difference is linear in v, it is computed as two SDPA calls.
/// Parameters keep the Llama projection names plus <c>lambda_q1/k1/q2/k2</c> and <c>subln</c>.
/// </summary>
public sealed class DifferentialAttention : AttentionBase
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;
    private readonly Parameter lambda_q1;
    private readonly Parameter lambda_k1;
    private readonly Parameter lambda_q2;
    private readonly Parameter lambda_k2;
    private readonly RmsNorm subln;
    private readonly double _lambdaInit;

    /// <summary>Creates the attention of block <paramref name="layerIndex"/>.</summary>
    public DifferentialAttention(ModelConfig config, int layerIndex)
        : base(nameof(DifferentialAttention), config, config.HeadDim / 2)
    {
        long c = config.HiddenSize, q = config.NumAttentionHeads * config.HeadDim, kv = config.NumKeyValueHeads * config.HeadDim;
        q_proj = nn.Linear(c, q, hasBias: config.AttentionBias);
        k_proj = nn.Linear(c, kv, hasBias: config.AttentionBias);
        v_proj = nn.Linear(c, kv, hasBias: config.AttentionBias);
        o_proj = nn.Linear(q, c, hasBias: config.AttentionBias);
        var half = config.HeadDim / 2;
        lambda_q1 = new Parameter(normal(0, 0.1, [half]));
        lambda_k1 = new Parameter(normal(0, 0.1, [half]));
        lambda_q2 = new Parameter(normal(0, 0.1, [half]));
        lambda_k2 = new Parameter(normal(0, 0.1, [half]));
        subln = new RmsNorm(config.HeadDim, 1e-5);
        _lambdaInit = LambdaInit(layerIndex);
        RegisterComponents();
    }

    /// <summary>λ_init for block <paramref name="layerIndex"/> (0-based).</summary>
    public static double LambdaInit(int layerIndex) => 0.8 - (0.6 * Math.Exp(-0.3 * layerIndex));

    /// <inheritdoc/>
    protected override (Tensor Q, Tensor K, Tensor V) Project(Tensor x, Tensor positions)
    {
        long b = x.shape[0], t = x.shape[1];
        int hq = Config.NumAttentionHeads, hkv = Config.NumKeyValueHeads, d = Config.HeadDim, half = d / 2;
        var q = q_proj.forward(x).view(b, t, hq, d).transpose(1, 2);  // (B, Hq, T, D)
        var k = k_proj.forward(x).view(b, t, hkv, d).transpose(1, 2); // (B, Hkv, T, D)
        var v = v_proj.forward(x).view(b, t, hkv, d).transpose(1, 2); // (B, Hkv, T, D)
        if (Rope is not null)
        {
            // each half is rotated on its own: it is a separate query/key of width D/2
            var (cos, sin) = Rope.Get(positions);
            q = cat([RotaryEmbedding.Apply(q.narrow(-1, 0, half), cos, sin), RotaryEmbedding.Apply(q.narrow(-1, half, half), cos, sin)], -1);
            k = cat([RotaryEmbedding.Apply(k.narrow(-1, 0, half), cos, sin), RotaryEmbedding.Apply(k.narrow(-1, half, half), cos, sin)], -1);
        }
        return (q, k, v);
    }

    /// <inheritdoc/>
    protected override Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, bool isCausal)
    {
        var half = Config.HeadDim / 2;
        var a = Sdpa(q.narrow(-1, 0, half), k.narrow(-1, 0, half), v, mask, isCausal);       // (B, Hq, T, D)
        var b = Sdpa(q.narrow(-1, half, half), k.narrow(-1, half, half), v, mask, isCausal); // (B, Hq, T, D)
        var lambda = (exp((lambda_q1 * lambda_k1).sum()) - exp((lambda_q2 * lambda_k2).sum())).PlusConstant(_lambdaInit);
        return subln.forward(a - (lambda.to(a.dtype) * b)).TimesConstant(1 - _lambdaInit); // per-head norm
    }

    /// <inheritdoc/>
    protected override Tensor Output(Tensor heads) =>
        o_proj.forward(heads.transpose(1, 2).reshape(heads.shape[0], heads.shape[2], -1)); // (B, T, C)
}
