using Pollen.Training.Collaborative;
using static TorchSharp.torch;

namespace Pollen.Tests.Training.Collaborative;

public class DeltaCodecTests
{
    private static Tensor Delta(long n, int seed)
    {
        var g = new Generator((ulong)seed);
        return randn([n], generator: g) * 1e-3f;
    }

    [Fact]
    public void F32IsExactAndF16IsClose()
    {
        using var scope = NewDisposeScope();
        var x = Delta(1000, 1);
        var f32 = DeltaCodec.Encode(x, DeltaCompression.F32);
        Assert.Equal(4000, f32.Length);
        Assert.True(DeltaCodec.Decode(f32, DeltaCompression.F32, 1000).eq(x).all().item<bool>());
        var f16 = DeltaCodec.Encode(x, DeltaCompression.F16);
        Assert.Equal(2000, f16.Length);
        var back = DeltaCodec.Decode(f16, DeltaCompression.F16, 1000);
        Assert.True(((back - x).abs() <= (x.abs() * 1e-3) + 1e-7).all().item<bool>());
    }

    [Theory]
    [InlineData(1000)]  // a partial last block
    [InlineData(512)]   // whole blocks
    [InlineData(3)]
    public void Int8ErrorIsWithinHalfABlockScale(long n)
    {
        using var scope = NewDisposeScope();
        var x = Delta(n, 2);
        x[0] = tensor(0.05f); // one large value makes its block's scale coarse, not the others'
        var bytes = DeltaCodec.Encode(x, DeltaCompression.Int8);
        var blocks = (n + DeltaCodec.Int8BlockSize - 1) / DeltaCodec.Int8BlockSize;
        Assert.Equal((blocks * 4) + n, bytes.Length);
        Assert.Equal(DeltaCodec.EncodedSize(n, DeltaCompression.Int8), bytes.Length);
        var back = DeltaCodec.Decode(bytes, DeltaCompression.Int8, n);
        for (long b = 0; b < blocks; b++)
        {
            var len = Math.Min(DeltaCodec.Int8BlockSize, n - (b * DeltaCodec.Int8BlockSize));
            var block = x.narrow(0, b * DeltaCodec.Int8BlockSize, len);
            var scale = block.abs().max().item<float>() / 127f;
            var error = (back.narrow(0, b * DeltaCodec.Int8BlockSize, len) - block).abs().max().item<float>();
            Assert.True(error <= (scale / 2) + 1e-9, $"block {b}: error {error} > half scale {scale / 2}");
        }
    }

    [Fact]
    public void MalformedPartsAreRefused()
    {
        using var scope = NewDisposeScope();
        var x = Delta(300, 3);
        var good = DeltaCodec.Encode(x, DeltaCompression.Int8);
        Assert.Contains("bytes", Assert.Throws<InvalidDataException>(() => DeltaCodec.Decode(good.AsSpan(1), DeltaCompression.Int8, 300)).Message);
        Assert.Throws<InvalidDataException>(() => DeltaCodec.Decode(good, DeltaCompression.Int8, 301));

        var negativeScale = (byte[])good.Clone();
        BitConverter.GetBytes(-1f).CopyTo(negativeScale, 0);
        Assert.Contains("scale", Assert.Throws<InvalidDataException>(() => DeltaCodec.Decode(negativeScale, DeltaCompression.Int8, 300)).Message);

        var nan = DeltaCodec.Encode(x, DeltaCompression.F32);
        BitConverter.GetBytes(float.NaN).CopyTo(nan, 40);
        Assert.Contains("NaN", Assert.Throws<InvalidDataException>(() => DeltaCodec.Decode(nan, DeltaCompression.F32, 300)).Message);
    }
}
