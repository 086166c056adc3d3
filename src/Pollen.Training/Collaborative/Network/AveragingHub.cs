using System.Collections.Concurrent;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Pollen.Swarm.Identity;
using Pollen.Training.Protos;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative.Network;

/// <summary>
/// This peer's half of the averaging service: the slice it reduces in the current round. A round is
/// registered by <see cref="ButterflyAllReduce"/> with this peer's own part; parts from the other members
/// arrive through <c>PutPart</c> and are checked (group, slice, membership, signature, size, finite
/// values) before they are kept; once every member's part is in, or at the round's part deadline, the
/// slice is combined, encoded once, and the same bytes go to every member that asks (<c>GetReduced</c>).
/// </summary>
public sealed class AveragingHub : IDisposable
{
    private readonly ConcurrentDictionary<(string Run, long Round), TaskCompletionSource<RoundSlice>> _rounds = new();
    private readonly TimeProvider _time;

    private readonly ConcurrentDictionary<string, Func<DilocoState>> _states = new(StringComparer.Ordinal);

    /// <summary>Offers <paramref name="snapshot"/>'s state of <paramref name="runId"/> to peers that ask (GetState).</summary>
    public void OfferState(string runId, Func<DilocoState> snapshot) => _states[runId] = snapshot;

    /// <summary>The state of <paramref name="runId"/>, or null when this peer trains no such run.</summary>
    internal DilocoState? TakeSnapshot(string runId) => _states.TryGetValue(runId, out var snapshot) ? snapshot() : null;

    private long _bytesServed;

    /// <summary>Bytes of reduced slices and state sent to other peers so far.</summary>
    public long BytesServed => Interlocked.Read(ref _bytesServed);

    internal void CountServed(long bytes) => Interlocked.Add(ref _bytesServed, bytes);

    /// <summary>Creates a hub on <paramref name="time"/> (deadlines).</summary>
    public AveragingHub(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    /// <summary>Registers the round this peer is averaging. Older rounds of the run are forgotten.</summary>
    internal RoundSlice Register(AveragingGroup group, int index, Tensor ownPart, DeltaCompression compression, Aggregation aggregation, TimeSpan partTimeout)
    {
        var slice = new RoundSlice(group, index, ownPart, compression, aggregation);
        var pending = _rounds.GetOrAdd((group.RunId, group.Round), _ => new TaskCompletionSource<RoundSlice>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!pending.TrySetResult(slice))
        {
            slice.Dispose();
            throw new InvalidOperationException($"round {group.Round} of run {group.RunId} is already being averaged");
        }
        foreach (var key in _rounds.Keys.Where(k => k.Run == group.RunId && k.Round < group.Round - 1))
        {
            if (_rounds.TryRemove(key, out var old) && old.Task.IsCompletedSuccessfully)
            {
                old.Task.Result.Dispose();
            }
        }
        slice.ScheduleDeadline(_time, partTimeout);
        return slice;
    }

    internal async Task<RoundSlice> FindAsync(SliceRef reference, CancellationToken cancellationToken)
    {
        if (reference is null || reference.GroupId.Length != 32 || reference.Round < 0)
        {
            throw Refuse(StatusCode.InvalidArgument, "ref with a 32-byte group_id and a round >= 0 is required");
        }
        var pending = _rounds.GetOrAdd((reference.RunId, reference.Round), _ => new TaskCompletionSource<RoundSlice>(TaskCreationOptions.RunContinuationsAsynchronously));
        RoundSlice slice;
        try
        {
            // a faster member may be here before this peer finished matchmaking: wait within the call's deadline
            slice = await pending.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _rounds.TryRemove(new KeyValuePair<(string, long), TaskCompletionSource<RoundSlice>>((reference.RunId, reference.Round), pending));
            throw Refuse(StatusCode.FailedPrecondition, $"this peer is not averaging round {reference.Round} of run '{reference.RunId}'");
        }
        if (!reference.GroupId.Span.SequenceEqual(slice.Group.GroupId))
        {
            throw Refuse(StatusCode.FailedPrecondition, $"this peer averages round {reference.Round} in another group (the members differ)");
        }
        if (reference.Slice != slice.Index)
        {
            throw Refuse(StatusCode.InvalidArgument, $"this peer reduces slice {slice.Index}, not {reference.Slice}");
        }
        return slice;
    }

    /// <summary>Accepts a member's part after checking it.</summary>
    internal async Task PutPartAsync(PartRequest request, CancellationToken cancellationToken)
    {
        var slice = await FindAsync(request.Ref, cancellationToken).ConfigureAwait(false);
        if (request.SenderPublicKey.Length != 32)
        {
            throw Refuse(StatusCode.InvalidArgument, "sender_public_key must be 32 bytes");
        }
        var sender = PeerId.FromPublicKey(request.SenderPublicKey.Span);
        var member = slice.Group.IndexOf(sender);
        if (member < 0 || member == slice.Index)
        {
            throw Refuse(StatusCode.PermissionDenied, $"peer {sender} is not a member of this round's group");
        }
        if (!NodeIdentity.Verify(request.SenderPublicKey.Span, SignedBytes(request.Ref, request.Compression, request.Elements, request.Payload), request.Signature.Span))
        {
            throw Refuse(StatusCode.PermissionDenied, "the part's signature does not verify against the sender's key");
        }
        if (request.Compression != ToWire(slice.Compression))
        {
            throw Refuse(StatusCode.InvalidArgument, $"the group sends {slice.Compression} parts, got {request.Compression}");
        }
        if (request.Elements != slice.Length)
        {
            throw Refuse(StatusCode.InvalidArgument, $"slice {slice.Index} has {slice.Length} values, the part has {request.Elements}");
        }
        Tensor values;
        try
        {
            values = DeltaCodec.Decode(request.Payload.Span, slice.Compression, slice.Length);
        }
        catch (InvalidDataException e)
        {
            throw Refuse(StatusCode.InvalidArgument, e.Message);
        }
        if (!slice.TryAdd(member, values))
        {
            values.Dispose();
            throw Refuse(StatusCode.FailedPrecondition, "a part from this member already arrived, or the slice was already reduced");
        }
    }

    /// <summary>The reduced slice, once ready.</summary>
    internal async Task<ReducedReply> GetReducedAsync(ReducedRequest request, CancellationToken cancellationToken)
    {
        var slice = await FindAsync(request.Ref, cancellationToken).ConfigureAwait(false);
        (ByteString Payload, int Contributors) reduced;
        try
        {
            reduced = await slice.Reduced.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw Refuse(StatusCode.Unavailable, $"slice {slice.Index} of round {slice.Group.Round} is not reduced yet or was abandoned");
        }
        var (payload, contributors) = reduced;
        return new ReducedReply { Compression = ToWire(slice.Compression), Elements = slice.Length, Payload = payload, Contributors = contributors };
    }

    /// <summary>The bytes a part's signature covers.</summary>
    internal static byte[] SignedBytes(SliceRef reference, Compression compression, long elements, ByteString payload)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(reference.ToByteArray());
        hash.AppendData(BitConverter.GetBytes((int)compression));
        hash.AppendData(BitConverter.GetBytes(elements));
        hash.AppendData(payload.Span);
        return hash.GetHashAndReset();
    }

    internal static Compression ToWire(DeltaCompression compression) => compression switch
    {
        DeltaCompression.F32 => Compression.F32,
        DeltaCompression.F16 => Compression.F16,
        _ => Compression.Int8,
    };

    private static RpcException Refuse(StatusCode code, string message) => new(new Status(code, message));

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var pending in _rounds.Values)
        {
            if (pending.Task.IsCompletedSuccessfully)
            {
                pending.Task.Result.Dispose();
            }
        }
        _rounds.Clear();
    }
}

/// <summary>The slice one peer reduces in one round: the parts that arrived and, once reduced, the result.</summary>
internal sealed class RoundSlice : IDisposable
{
    private readonly object _lock = new();
    private readonly Tensor?[] _parts;
    private readonly TaskCompletionSource<(ByteString Payload, int Contributors)> _reduced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ITimer? _deadline;
    private int _arrived;

    public RoundSlice(AveragingGroup group, int index, Tensor ownPart, DeltaCompression compression, Aggregation aggregation)
    {
        Group = group;
        Index = index;
        Compression = compression;
        Aggregation = aggregation;
        Length = ownPart.shape[0];
        _parts = new Tensor?[group.Members.Count];
        _parts[index] = ownPart;
        _arrived = 1;
        if (_arrived == _parts.Length)
        {
            Reduce();
        }
    }

    public AveragingGroup Group { get; }

    public int Index { get; }

    public DeltaCompression Compression { get; }

    public Aggregation Aggregation { get; }

    public long Length { get; }

    /// <summary>The encoded combination and how many parts went into it.</summary>
    public Task<(ByteString Payload, int Contributors)> Reduced => _reduced.Task;

    public void ScheduleDeadline(TimeProvider time, TimeSpan timeout) =>
        _deadline = time.CreateTimer(_ => Reduce(), null, timeout, Timeout.InfiniteTimeSpan);

    public bool TryAdd(int member, Tensor values)
    {
        lock (_lock)
        {
            if (_reduced.Task.IsCompleted || _parts[member] is not null)
            {
                return false;
            }
            _parts[member] = values;
            _arrived++;
        }
        if (Volatile.Read(ref _arrived) == _parts.Length)
        {
            Reduce();
        }
        return true;
    }

    /// <summary>Combines the parts that arrived (in member order) and encodes the result once.</summary>
    private void Reduce()
    {
        List<Tensor> parts;
        lock (_lock)
        {
            if (_reduced.Task.IsCompleted)
            {
                return;
            }
            parts = [.. _parts.Where(p => p is not null).Select(p => p!)];
            using var scope = TorchSharp.torch.NewDisposeScope();
            using var combined = Aggregator.Combine(parts, Aggregation);
            _reduced.SetResult((ByteString.CopyFrom(DeltaCodec.Encode(combined, Compression)), parts.Count));
        }
    }

    public void Dispose()
    {
        _deadline?.Dispose();
        lock (_lock)
        {
            _reduced.TrySetCanceled();
            for (var i = 0; i < _parts.Length; i++)
            {
                _parts[i]?.Dispose();
                _parts[i] = null;
            }
        }
    }
}
