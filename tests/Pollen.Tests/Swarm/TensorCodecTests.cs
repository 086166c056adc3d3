using Google.Protobuf;
using Pollen.Swarm.Protos;
using Pollen.Swarm.Tensors;

namespace Pollen.Tests.Swarm;

public sealed class TensorCodecTests
{
    [Fact]
    public void FloatTensorsRoundTripBitExactly()
    {
        var data = Enumerable.Range(0, 2 * 3 * 4).Select(i => i * 0.37f - 2f).Append(float.NaN).Append(-0f).ToArray();
        var tensor = TensorCodec.Encode<float>(data, [2, 13]);
        Assert.Equal([2L, 13L], tensor.Shape);
        Assert.Equal(DType.Float32, tensor.Dtype);
        Assert.Equal(data.Length * 4, tensor.Bytes.Length);

        var parsed = Tensor.Parser.ParseFrom(tensor.ToByteArray());
        var back = TensorCodec.Decode<float>(parsed);
        Assert.Equal(data.Select(BitConverter.SingleToInt32Bits), back.Select(BitConverter.SingleToInt32Bits));
        var into = new float[data.Length];
        TensorCodec.DecodeInto<float>(parsed, into);
        Assert.Equal(back, into);
    }

    [Fact]
    public void HalfLongAndRawBfloat16Work()
    {
        Half[] halves = [(Half)1.5, (Half)(-2), Half.MaxValue];
        Assert.Equal(halves, TensorCodec.Decode<Half>(TensorCodec.Encode<Half>(halves, [3])));
        long[] longs = [long.MinValue, 0, long.MaxValue];
        Assert.Equal(longs, TensorCodec.Decode<long>(TensorCodec.Encode<long>(longs, [3, 1])));
        var bf16 = TensorCodec.Encode(new byte[] { 0x80, 0x3F, 0x00, 0x40 }, [2], DType.Bfloat16);
        Assert.Equal(2, TensorCodec.Validate(bf16));
        var scalar = TensorCodec.Encode<float>([7f], []);
        Assert.Equal([7f], TensorCodec.Decode<float>(scalar));
    }

    [Fact]
    public void MalformedTensorsAreRefusedWithTheReason()
    {
        Assert.Contains("needs 12 bytes", Assert.Throws<TensorFormatException>(() => TensorCodec.Encode<float>([1f, 2f], [3])).Message);
        var wrongSize = new Tensor { Dtype = DType.Float32, Bytes = ByteString.CopyFrom(new byte[7]) };
        wrongSize.Shape.Add(2);
        Assert.Throws<TensorFormatException>(() => TensorCodec.Validate(wrongSize));
        var negative = new Tensor { Dtype = DType.Float32 };
        negative.Shape.Add(-1);
        Assert.Contains("negative", Assert.Throws<TensorFormatException>(() => TensorCodec.Validate(negative)).Message);
        var overflow = new Tensor { Dtype = DType.Float64 };
        overflow.Shape.AddRange([long.MaxValue / 2, 4]);
        Assert.Throws<TensorFormatException>(() => TensorCodec.Validate(overflow));
        Assert.Throws<TensorFormatException>(() => TensorCodec.Validate(new Tensor()));
        var ok = TensorCodec.Encode<float>([1f, 2f], [2]);
        Assert.Contains("expected Float16", Assert.Throws<TensorFormatException>(() => TensorCodec.Decode<Half>(ok)).Message);
        Assert.Contains("cap", Assert.Throws<TensorFormatException>(() => TensorCodec.Validate(ok, maxBytes: 4)).Message);
        Assert.Throws<TensorFormatException>(() => TensorCodec.DecodeInto<float>(ok, new float[3]));
    }
}
