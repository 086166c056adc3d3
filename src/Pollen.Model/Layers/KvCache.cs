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

    /// <summary>
    /// Moves the caches of single-row sessions that step together into one buffer per block (row i is
    /// <paramref name="caches"/>[i]), so that a one-token step of them all appends and attends with one
    /// call each instead of one per session (see <see cref="AttentionBase.ForwardSessions"/>). Each
    /// session keeps working alone as before. Returns false, changing nothing, when the caches cannot
    /// share: different blocks or shapes, a batch of more than one row, or a buffer that would hold more
    /// tokens than the sessions' maximum lengths add up to.
    /// </summary>
    public static bool Share(IReadOnlyList<KvCache> caches)
    {
        if (caches.Count < 2 || caches.Distinct().Count() != caches.Count)
        {
            return false;
        }
        var layers = caches[0]._layers.Keys.Order().ToArray();
        if (caches.Any(c => c._layers.Count != layers.Length || layers.Any(l => !c._layers.ContainsKey(l))))
        {
            return false;
        }
        var groups = layers.Select(l => caches.Select(c => c._layers[l]).ToArray()).ToArray();
        if (!groups.All(SharedLayerKv.CanShare))
        {
            return false;
        }
        foreach (var group in groups)
        {
            SharedLayerKv.Share(group);
        }
        return true;
    }

    /// <summary>Whether every block of <paramref name="caches"/> is shared, row i being <paramref name="caches"/>[i].</summary>
    public static bool AreShared(IReadOnlyList<KvCache> caches) =>
        caches.Count > 0 && caches[0]._layers.Count > 0
        && caches[0]._layers.Keys.All(l => SharedLayerKv.Covering(caches.Select(c => c._layers.GetValueOrDefault(l)).ToArray()) is not null);

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
    public int Length { get; internal set; }

    /// <summary>The most tokens this cache may hold.</summary>
    internal int MaxLength => _maxLength;

    /// <summary>Allocated positions per row.</summary>
    internal int Capacity => _keys is null ? 0 : (int)_keys.shape[2];

    /// <summary>Keys of every allocated position (B, Hk, capacity, Dk), or null before the first append.</summary>
    internal Tensor? KeyBuffer => _keys;

    /// <summary>Values of every allocated position (B, Hv, capacity, Dv), or null before the first append.</summary>
    internal Tensor? ValueBuffer => _values;

    /// <summary>The buffer this cache is a row of, or null when it owns its buffers.</summary>
    internal SharedLayerKv? Shared { get; private set; }

    /// <summary>This cache's row in <see cref="Shared"/>.</summary>
    internal int Row { get; private set; }

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

    /// <summary>Becomes row <paramref name="row"/> of <paramref name="shared"/>: the tokens held so far are copied there.</summary>
    internal void Join(SharedLayerKv shared, int row, Tensor keys, Tensor values, Tensor positions)
    {
        if (Length > 0)
        {
            keys.narrow(2, 0, Length).copy_(_keys!.narrow(2, 0, Length));
            values.narrow(2, 0, Length).copy_(_values!.narrow(2, 0, Length));
            positions.narrow(1, 0, Length).copy_(_positions!.narrow(1, 0, Length));
        }
        Leave();
        DisposeBuffers();
        (_keys, _values, _positions) = (keys, values, positions);
        (Shared, Row) = (shared, row);
    }

    /// <summary>Points at the rows of a shared buffer that was reallocated (the contents were copied with it).</summary>
    internal void Rebind(Tensor keys, Tensor values, Tensor positions)
    {
        DisposeBuffers();
        (_keys, _values, _positions) = (keys, values, positions);
    }

    /// <summary>Stops being a row of a shared buffer, taking its tokens into buffers of its own.</summary>
    internal void Unshare()
    {
        if (Shared is null)
        {
            return;
        }
        var (keys, values, positions) = (_keys!, _values!, _positions!);
        (_keys, _values, _positions) = (null, null, null);
        var capacity = Math.Max(Length, Math.Min((int)keys.shape[2], _maxLength));
        _keys = zeros([1, keys.shape[1], capacity, keys.shape[3]], keys.dtype).DetachFromDisposeScope();
        _values = zeros([1, values.shape[1], capacity, values.shape[3]], values.dtype).DetachFromDisposeScope();
        _positions = zeros([1, capacity], int64).DetachFromDisposeScope();
        if (Length > 0)
        {
            _keys.narrow(2, 0, Length).copy_(keys.narrow(2, 0, Length));
            _values.narrow(2, 0, Length).copy_(values.narrow(2, 0, Length));
            _positions.narrow(1, 0, Length).copy_(positions.narrow(1, 0, Length));
        }
        keys.Dispose();
        values.Dispose();
        positions.Dispose();
        Leave();
    }

    private void Leave()
    {
        Shared?.Release(this);
        Shared = null;
    }

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
        Leave(); // a row of a shared buffer that outgrows it continues on its own
        DisposeBuffers();
        (_keys, _values, _positions) = (newKeys, newValues, newPositions);
    }

    private static long Bytes(Tensor? t) => t is null ? 0 : t.numel() * t.ElementSize;

    private void DisposeBuffers()
    {
        _keys?.Dispose();
        _values?.Dispose();
        _positions?.Dispose();
        (_keys, _values, _positions) = (null, null, null);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Leave();
        DisposeBuffers();
    }
}
