using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>The Llama MLP: <c>down_proj(silu(gate_proj(x)) * up_proj(x))</c> (Shazeer, 2020).</summary>
public sealed class SwiGluMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear gate_proj;
    private readonly Linear up_proj;
    private readonly Linear down_proj;

    /// <summary>Creates the MLP for width <paramref name="hidden"/> and inner width <paramref name="intermediate"/>.</summary>
    public SwiGluMlp(long hidden, long intermediate, bool bias) : base(nameof(SwiGluMlp))
    {
        gate_proj = nn.Linear(hidden, intermediate, hasBias: bias);
        up_proj = nn.Linear(hidden, intermediate, hasBias: bias);
        down_proj = nn.Linear(intermediate, hidden, hasBias: bias);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) =>
        down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x)); // (B, T, C)
}
