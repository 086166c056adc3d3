namespace Pollen.Model.Checkpoints;

/// <summary>One tensor entry of a safetensors header, validated against the file.</summary>
/// <param name="Name">The tensor's key, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</param>
/// <param name="DType">The stored element type.</param>
/// <param name="Shape">The dimensions; empty for a scalar.</param>
/// <param name="Offset">Byte position of the tensor's data from the start of the file (not from the data region).</param>
/// <param name="Length">Size of the tensor's data in bytes (element count × element size).</param>
public sealed record TensorInfo(string Name, SafeTensorsDType DType, long[] Shape, long Offset, long Length)
{
    /// <summary>Number of elements (the product of <see cref="Shape"/>; 1 for a scalar).</summary>
    public long ElementCount => Length / DType.ElementSize();

    /// <summary>The shape as text, e.g. <c>[4096, 11008]</c>.</summary>
    public string ShapeText => $"[{string.Join(", ", Shape)}]";
}
