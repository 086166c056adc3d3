using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>
/// The keys (N, Hk, capacity, Dk), values (N, Hv, capacity, Dv) and positions (N, capacity) of one block for
/// N single-row sessions that step together; row i belongs to member i, whose <see cref="LayerKvCache"/>
/// holds views of that row and keeps working alone. A one-token step of all members appends with one call
/// per tensor and attends with one call, padding masked, instead of a dozen calls per session. The buffer
/// grows by doubling while it stays within the members' maximum lengths added up (so sharing never holds
/// more than the sessions reserved); past that, the members go back to buffers of their own.
/// </summary>
internal sealed class SharedLayerKv
{
    private readonly LayerKvCache?[] _members;
    private readonly int _limit;
    private Tensor _keys;
    private Tensor _values;
    private Tensor _positions;
    private int _live;

    private SharedLayerKv(LayerKvCache[] members, int capacity, int limit)
    {
        _members = members;
        _limit = limit;
        (_keys, _values, _positions) = Allocate(members.Length, members[0].KeyBuffer!, members[0].ValueBuffer!, capacity);
        _live = members.Length;
    }

    private int Capacity => (int)_keys.shape[2];

    /// <summary>The most positions a row may have: the members' maximum lengths, added up, over the rows.</summary>
    private static int Limit(IReadOnlyList<LayerKvCache> members) => (int)(members.Sum(m => (long)m.MaxLength) / members.Count);

    /// <summary>Whether <paramref name="members"/> can share one buffer: one row each, same shapes, room within the limit.</summary>
    internal static bool CanShare(IReadOnlyList<LayerKvCache> members)
    {
        if (members.Any(m => m.KeyBuffer is null || m.KeyBuffer.shape[0] != 1))
        {
            return false;
        }
        var first = members[0].KeyBuffer!;
        if (members.Any(m => m.KeyBuffer!.dtype != first.dtype || m.KeyBuffer.shape[1] != first.shape[1] || m.KeyBuffer.shape[3] != first.shape[3]))
        {
            return false;
        }
        return members.Max(m => m.Length) + 1 <= Limit(members);
    }

    /// <summary>Makes <paramref name="members"/> (checked with <see cref="CanShare"/>) rows of a new shared buffer.</summary>
    internal static void Share(LayerKvCache[] members)
    {
        var limit = Limit(members);
        var capacity = Math.Min(limit, Math.Max(members.Max(m => m.Capacity), members.Max(m => m.Length) + 1));
        var shared = new SharedLayerKv(members, capacity, limit);
        for (var i = 0; i < members.Length; i++)
        {
            var (k, v, p) = shared.RowViews(i);
            members[i].Join(shared, i, k, v, p);
        }
    }

    /// <summary>The shared buffer whose rows are exactly <paramref name="layers"/>, in order, or null.</summary>
    internal static SharedLayerKv? Covering(IReadOnlyList<LayerKvCache?> layers)
    {
        if (layers.Count == 0 || layers[0]?.Shared is not { } shared || shared._members.Length != layers.Count)
        {
            return null;
        }
        for (var i = 0; i < layers.Count; i++)
        {
            if (layers[i] is not { } layer || !ReferenceEquals(layer.Shared, shared) || layer.Row != i)
            {
                return null;
            }
        }
        return shared;
    }

    /// <summary>
    /// Appends one token per row — keys (N, Hk, 1, Dk), values (N, Hv, 1, Dv), positions (N, 1) — and returns
    /// views of every row up to the longest: keys (N, Hk, S, Dk), values, key positions (N, S) and, when
    /// the rows differ in length, which entries hold tokens (N, S). Null when the buffer would have to grow
    /// past its limit: the members then have buffers of their own and the caller steps them one by one.
    /// </summary>
    internal (Tensor Keys, Tensor Values, Tensor Positions, Tensor? Filled)? Append(Tensor keys, Tensor values, Tensor positions)
    {
        var members = _members.Select(m => m!).ToArray();
        foreach (var member in members)
        {
            if (member.Length + 1 > member.MaxLength)
            {
                throw new InvalidOperationException($"the session holds {member.Length} tokens and 1 more would exceed its maximum length of {member.MaxLength}");
            }
        }
        var lengths = members.Select(m => (long)m.Length).ToArray();
        var longest = (int)lengths.Max() + 1;
        if (longest > Capacity && !Grow(longest))
        {
            return null;
        }
        var equal = lengths.All(l => l == lengths[0]);
        if (equal)
        {
            _keys.narrow(2, lengths[0], 1).copy_(keys);
            _values.narrow(2, lengths[0], 1).copy_(values);
            _positions.narrow(1, lengths[0], 1).copy_(positions);
        }
        else
        {
            // row i gets its token at column lengths[i]: x[rows, :, columns] is (N, H, D)
            var rows = arange(members.Length, int64);
            var columns = tensor(lengths);
            _keys.index_put_(keys.squeeze(2), TensorIndex.Tensor(rows), TensorIndex.Colon, TensorIndex.Tensor(columns));
            _values.index_put_(values.squeeze(2), TensorIndex.Tensor(rows), TensorIndex.Colon, TensorIndex.Tensor(columns));
            _positions.index_put_(positions.squeeze(1), TensorIndex.Tensor(rows), TensorIndex.Tensor(columns));
        }
        foreach (var member in members)
        {
            member.Length++;
        }
        Tensor? filled = null;
        if (!equal)
        {
            var newLengths = tensor(lengths.Select(l => l + 1).ToArray()).unsqueeze(1); // (N, 1)
            filled = arange(longest, int64).unsqueeze(0).lt(newLengths); // (N, S)
        }
        return (_keys.narrow(2, 0, longest), _values.narrow(2, 0, longest), _positions.narrow(1, 0, longest), filled);
    }

    /// <summary>Reallocates every row with room for <paramref name="needed"/> positions; false (and unshared) past the limit.</summary>
    private bool Grow(int needed)
    {
        if (needed > _limit)
        {
            foreach (var member in _members.ToArray())
            {
                member?.Unshare();
            }
            return false;
        }
        var capacity = Math.Min(_limit, Math.Max(needed, Capacity * 2));
        var (keys, values, positions) = Allocate(_members.Length, _keys, _values, capacity);
        var old = Capacity;
        keys.narrow(2, 0, old).copy_(_keys);
        values.narrow(2, 0, old).copy_(_values);
        positions.narrow(1, 0, old).copy_(_positions);
        DisposeBuffers();
        (_keys, _values, _positions) = (keys, values, positions);
        for (var i = 0; i < _members.Length; i++)
        {
            var (k, v, p) = RowViews(i);
            _members[i]!.Rebind(k, v, p);
        }
        return true;
    }

    /// <summary>Called by a member that leaves (disposed, outgrown or joined elsewhere); the last one frees the buffers.</summary>
    internal void Release(LayerKvCache member)
    {
        var row = Array.IndexOf(_members, member);
        if (row < 0)
        {
            return;
        }
        _members[row] = null;
        if (--_live == 0)
        {
            DisposeBuffers();
        }
    }

    private (Tensor Keys, Tensor Values, Tensor Positions) RowViews(int row) =>
        (_keys.narrow(0, row, 1).DetachFromDisposeScope(), _values.narrow(0, row, 1).DetachFromDisposeScope(), _positions.narrow(0, row, 1).DetachFromDisposeScope());

    private static (Tensor Keys, Tensor Values, Tensor Positions) Allocate(int n, Tensor k, Tensor v, int capacity) =>
         (zeros([n, k.shape[1], capacity, k.shape[3]], k.dtype).DetachFromDisposeScope(),
            zeros([n, v.shape[1], capacity, v.shape[3]], v.dtype).DetachFromDisposeScope(),
            zeros([n, capacity], int64).DetachFromDisposeScope());

    private void DisposeBuffers()
    {
        _keys.Dispose();
        _values.Dispose();
        _positions.Dispose();
    }
}
