using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>
/// ALiBi (Press et al., 2022): attention scores get <c>slope_h · (pos_k − pos_q)</c>, a linear penalty
/// by distance with a fixed geometric slope per head; no position signal enters the embeddings.
/// </summary>
public static class Alibi
{
    /// <summary>The per-head slopes of the paper, including its rule for head counts not a power of two.</summary>
    public static float[] Slopes(int heads)
    {
        static double[] PowerOfTwo(int n)
        {
            var start = Math.Pow(2, -8.0 / n);
            return [.. Enumerable.Range(1, n).Select(i => Math.Pow(start, i))];
        }
        var closest = 1 << (int)Math.Floor(Math.Log2(heads));
        var slopes = PowerOfTwo(closest).ToList();
        if (closest < heads)
        {
            slopes.AddRange(PowerOfTwo(2 * closest).Where((_, i) => i % 2 == 0).Take(heads - closest));
        }
        return [.. slopes.Select(s => (float)s)];
    }

    /// <summary>
    /// The additive bias (B, H, T, S) in float32 for query positions (B, T) and key positions (B, S).
    /// </summary>
    public static Tensor Bias(Tensor slopes, Tensor queryPositions, Tensor keyPositions)
    {
        var distance = (keyPositions.unsqueeze(1) - queryPositions.unsqueeze(2)).to(float32); // (B, T, S)
        return slopes.view(1, -1, 1, 1) * distance.unsqueeze(1);
    }
}
