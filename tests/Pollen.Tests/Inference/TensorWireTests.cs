using Pollen.Inference.Wire;
using Pollen.Swarm.Tensors;
using static TorchSharp.torch;

namespace Pollen.Tests.Inference;

public class TensorWireTests
{
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void AllFiniteFindsNaNAndInfinityAnywhereInEveryActivationDtype(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        // 37 elements: the vectorized part and the scalar tail are both exercised
        var values = linspace(-60000, 60000, 37).to_type(dtype);
        Assert.True(TensorWire.AllFinite(TensorWire.Encode(values)));
        foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            foreach (var at in new[] { 0, 17, 36 })
            {
                var copy = values.clone();
                copy[at] = tensor(bad).to_type(dtype);
                Assert.False(TensorWire.AllFinite(TensorWire.Encode(copy)), $"{bad} at {at}");
            }
        }
    }

    [Fact]
    public void Int64RangeIsTheSmallestAndLargestElement()
    {
        Assert.Equal((-3L, 9L), TensorWire.Int64Range(TensorCodec.Encode<long>([4, -3, 9, 0], [2, 2])));
        Assert.Throws<TensorFormatException>(() => TensorWire.Int64Range(TensorCodec.Encode<float>([1f], [1])));
    }
}
