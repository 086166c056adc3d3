using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Model.Runtime;

/// <summary>
/// Tensor arithmetic whose scalars stay alive for the whole native call.
/// </summary>
/// <remarks>
/// TorchSharp turns a .NET number into a finalizable <see cref="Scalar"/> and hands libtorch only its
/// handle; <c>a + b</c>, <c>add(scalar)</c> and <c>add_(…)</c> pass an implicit alpha of 1 the same way,
/// and <c>square()</c> an exponent of 2 (<c>a - b</c> and tensor products pass none). Nothing keeps that
/// temporary reachable during the call, so a garbage collection on another thread can run its finalizer
/// and free the scalar while libtorch still reads it: a training step once died with "INTERNAL ASSERT
/// FAILED at c10/core/Scalar.h" inside <c>pow</c>. The scalars here are held by static fields, so they are
/// never finalized; the model's and the trainers' per-step paths use these instead of the operators.
/// </remarks>
public static class TensorMath
{
    private static readonly ConcurrentDictionary<double, Scalar> Constants = new();

    /// <summary>1, for the alpha of <c>add</c> and <c>add_</c>.</summary>
    public static Scalar One { get; } = 1.ToScalar();

    /// <summary>−∞, for masks.</summary>
    public static Scalar NegativeInfinity { get; } = float.NegativeInfinity.ToScalar();

    /// <summary><paramref name="a"/> + <paramref name="b"/>.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><paramref name="a"/> + <paramref name="value"/> (a value from a small fixed set, see <see cref="Constant"/>).</summary>
    public static Tensor PlusConstant(this Tensor a, double value) => a.add(Constant(value), One);

    /// <summary><paramref name="a"/> · <paramref name="value"/> (a value from a small fixed set, see <see cref="Constant"/>).</summary>
    public static Tensor TimesConstant(this Tensor a, double value) => a.mul(Constant(value));

    /// <summary><paramref name="x"/>² element-wise (what <c>square()</c> computes, without its temporary exponent).</summary>
    public static Tensor Squared(this Tensor x) => x.mul(x);

    /// <summary>
    /// A scalar for a value fixed for the life of the process (a model constant, a codec bound): one per
    /// distinct value, never freed, so use it only for values from a small fixed set.
    /// </summary>
    public static Scalar Constant(double value) => Constants.GetOrAdd(value, v => v.ToScalar());
}
