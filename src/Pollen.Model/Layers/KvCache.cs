using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>
/// The keys, values and positions one inference session has produced, per block index. A server that
/// hosts blocks 4..7 keeps one cache per session holding entries 4..7 only. Buffers are preallocated
/// and grown by doubling up to <see cref="MaxLength"/>; they live outside dispose scopes and are freed
/// by <see cref="Dispose"/>.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Dictionary<int, LayerKvCache> _layers = [];

    /// <summary>Creates an empty cache that refuses to hold more than <paramref name="maxLength"/> tokens.</summary>
    public KvCache(int maxLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxLength);
        MaxLength = maxLength;
    }

    /// <summary>The most tokens a layer may hold.</summary>
    public int MaxLength { get; }

    /// <summary>Tokens held (the longest layer; all layers agree between steps).</summary>
    public int Length => _layers.Count == 0 ? 0 : _layers.Values.Max(l => l.Length);

    /// <summary>Bytes held by the buffers of all layers.</summary>
    public long AllocatedBytes => _layers.Values.Sum(l => l.AllocatedBytes);

    /// <summary>The cache of block <paramref name="layerIndex"/>, created on first use.</summary>
    public LayerKvCache Layer(int layerIndex)
    {
        if (!_layers.TryGetValue(layerIndex, out var layer))
        {
            layer = new LayerKvCache(MaxLength);
            _layers[layerIndex] = layer;
        }
        return layer;
    }

    /// <summary>Forgets every token from <paramref name="length"/> on, in every layer.</summary>
    public void Truncate(int length)
    {
        foreach (var layer in _layers.Values)
        {
            layer.Truncate(length);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var layer in _layers.Values)
        {
            layer.Dispose();
        }
        _layers.Clear();
    }
}

/// <summary>Keys (B, Hk, S, Dk), values (B, Hv, S, Dv) and key positions (B, S) of one block.</summary>
public sealed class LayerKvCache : IDisposable
{
    private readonly int _maxLength;
    private Tensor? _keys;
    private Tensor? _values;
    private Tensor? _positions;

    internal LayerKvCache(int maxLength) => _maxLength = maxLength;

    /// <summary>Tokens held.</summary>
    public int Length { get; private set; }

    /// <summary>Bytes held by the buffers.</summary>
    public long AllocatedBytes => Bytes(_keys) + Bytes(_values) + Bytes(_positions);

    /// <summary>
    /// Appends T new entries and returns views of all entries so far: keys (B, Hk, L+T, Dk), values
    /// (B, Hv, L+T, Dv) and positions (B, L+T).
    /// </summary>
    public (Tensor Keys, Tensor Values, Tensor Positions) Append(Tensor keys, Tensor values, Tensor positions)
    {
        var t = (int)keys.shape[2];
        var total = Length + t;
        if (total > _maxLength)
        {
            throw new InvalidOperationException($"the session holds {Length} tokens and {t} more would exceed its maximum length of {_maxLength}");
        }
        if (_keys is not null && (_keys.shape[0] != keys.shape[0] || _keys.shape[1] != keys.shape[1] || _keys.shape[3] != keys.shape[3]))
        {
            throw new ArgumentException($"keys of shape [{string.Join(", ", keys.shape)}] do not match the cache's [{string.Join(", ", _keys.shape)}]");
        }
        EnsureCapacity(keys, values, total);
        _keys!.narrow(2, Length, t).copy_(keys);
        _values!.narrow(2, Length, t).copy_(values);
        _positions!.narrow(1, Length, t).copy_(positions);
        Length = total;
        return (_keys.narrow(2, 0, total), _values.narrow(2, 0, total), _positions.narrow(1, 0, total));
    }

    internal void Truncate(int length) => Length = Math.Clamp(length, 0, Length);

    private void EnsureCapacity(Tensor keys, Tensor values, int needed)
    {
        var capacity = _keys is null ? 0 : (int)_keys.shape[2];
        if (needed <= capacity)
        {
            return;
        }
        var newCapacity = Math.Min(_maxLength, Math.Max(needed, Math.Max(64, capacity * 2)));
        var b = keys.shape[0];
        var newKeys = zeros([b, keys.shape[1], newCapacity, keys.shape[3]], keys.dtype).DetachFromDisposeScope();
        var newValues = zeros([b, values.shape[1], newCapacity, values.shape[3]], values.dtype).DetachFromDisposeScope();
        var newPositions = zeros([b, newCapacity], int64).DetachFromDisposeScope();
        if (_keys is not null && Length > 0)
        {
            newKeys.narrow(2, 0, Length).copy_(_keys.narrow(2, 0, Length));
            newValues.narrow(2, 0, Length).copy_(_values!.narrow(2, 0, Length));
            newPositions.narrow(1, 0, Length).copy_(_positions!.narrow(1, 0, Length));
        }
        Dispose();
        (_keys, _values, _positions) = (newKeys, newValues, newPositions);
    }

    private static long Bytes(Tensor? t) => t is null ? 0 : t.numel() * t.ElementSize;

    /// <inheritdoc/>
    public void Dispose()
    {
        _keys?.Dispose();
        _values?.Dispose();
        _positions?.Dispose();
        (_keys, _values, _positions) = (null, null, null);
    }
}
