using Pollen.Model.Config;
using Pollen.Model.Runtime;
using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>
/// Rotary position embedding (Su et al., 2021) in the Hugging Face Llama layout: the head dimension is
/// split in halves and rotated as <c>x·cos + rotate_half(x)·sin</c>. Cos/sin tables are computed in
/// float64→float32 once per position and grown on demand, so a step only gathers rows.
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    private readonly double[] _invFreq;
    private readonly Lock _lock = new();
    private Tensor _cos = empty(0);
    private Tensor _sin = empty(0);
    private long _rows;

    /// <summary>Creates the rotation for heads of width <paramref name="dim"/>.</summary>
    public RotaryEmbedding(int dim, double theta, RopeScaling? scaling)
    {
        var invFreq = new double[dim / 2];
        for (var i = 0; i < invFreq.Length; i++)
        {
            invFreq[i] = 1.0 / Math.Pow(theta, 2.0 * i / dim);
        }
        _invFreq = scaling?.Apply(invFreq) ?? invFreq;
        Dim = dim;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int, double, RopeScaling?), RotaryEmbedding> SharedTables = new();

    /// <summary>One table per (width, theta, scaling), shared by every block of a process.</summary>
    public static RotaryEmbedding Shared(int dim, double theta, RopeScaling? scaling) =>
        SharedTables.GetOrAdd((dim, theta, scaling), key => new RotaryEmbedding(key.Item1, key.Item2, key.Item3));

    /// <summary>Rotated width.</summary>
    public int Dim { get; }

    /// <summary>Returns (cos, sin) of shape (B, 1, T, Dim) in float32 for positions (B, T).</summary>
    public (Tensor Cos, Tensor Sin) Get(Tensor positions)
    {
        var needed = positions.numel() == 0 ? 0 : positions.max().item<long>() + 1;
        Tensor cos, sin;
        lock (_lock)
        {
            if (needed > _rows)
            {
                Grow(Math.Max(needed, Math.Max(256, _rows * 2)));
            }
            cos = _cos;
            sin = _sin;
        }
        var flat = positions.reshape(-1);
        var shape = new long[] { positions.shape[0], 1, positions.shape[1], Dim };
        return (cos.index_select(0, flat).reshape(shape), sin.index_select(0, flat).reshape(shape));
    }

    /// <summary>Applies the rotation to x (B, H, T, Dim) given (cos, sin) from <see cref="Get"/>.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        var half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = cat([-x2, x1], -1);
        return (x * cos.to(x.dtype)).Plus(rotated * sin.to(x.dtype));
    }

    private void Grow(long rows)
    {
        var half = _invFreq.Length;
        var cos = new float[rows * Dim];
        var sin = new float[rows * Dim];
        for (long p = 0; p < rows; p++)
        {
            for (var i = 0; i < half; i++)
            {
                // angle in float64, stored as float32 (as Hugging Face computes in float32)
                var angle = (float)(p * (float)_invFreq[i]);
                var c = MathF.Cos(angle);
                var s = MathF.Sin(angle);
                cos[(p * Dim) + i] = c;
                cos[(p * Dim) + half + i] = c;
                sin[(p * Dim) + i] = s;
                sin[(p * Dim) + half + i] = s;
            }
        }
        var newCos = tensor(cos, [rows, Dim]).DetachFromDisposeScope();
        var newSin = tensor(sin, [rows, Dim]).DetachFromDisposeScope();
        _cos.Dispose();
        _sin.Dispose();
        (_cos, _sin, _rows) = (newCos, newSin, rows);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _cos.Dispose();
        _sin.Dispose();
    }
}
