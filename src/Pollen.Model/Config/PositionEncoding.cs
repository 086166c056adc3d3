namespace Pollen.Model.Config;

/// <summary>How a block learns where tokens are (Pollen key <c>pollen_position_encoding</c>).</summary>
public enum PositionEncoding
{
    /// <summary>Rotary embeddings on queries and keys (Llama); the default.</summary>
    Rope,

    /// <summary>Linear attention biases by distance (Press et al., 2022); no rotation.</summary>
    Alibi,
}

/// <summary>Which attention a block uses (Pollen key <c>pollen_attention</c>).</summary>
public enum AttentionKind
{
    /// <summary>Softmax attention as in Llama; the default.</summary>
    Standard,

    /// <summary>
    /// Differential attention (Ye et al., 2024): each head computes two softmax maps from the two halves of
    /// its query/key dimensions and subtracts them with a learned λ, then normalizes per head.
    /// </summary>
    Differential,
}
