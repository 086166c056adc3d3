using Pollen.Model.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>Root-mean-square layer norm (Zhang and Sennrich, 2019) with a learned per-channel gain.</summary>
/// <remarks>
/// ε and the square go through <see cref="TensorMath"/>: a temporary scalar passed to a native op may be
/// finalized by the garbage collector while the op still reads it, which after hours of training showed up
/// as a native assertion here.
/// </remarks>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    /// <summary>Creates a norm over the last dimension of width <paramref name="dim"/>.</summary>
    public RmsNorm(long dim, double eps) : base(nameof(RmsNorm))
    {
        weight = new Parameter(ones(dim));
        _eps = eps;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        // norm in float32, then back to the input dtype
        var x32 = x.to(float32);
        var normed = x32 * rsqrt(x32.Squared().mean([-1], keepdim: true).PlusConstant(_eps));
        return weight * normed.to(x.dtype);
    }
}
