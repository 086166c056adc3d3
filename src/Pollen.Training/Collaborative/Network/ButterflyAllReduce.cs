using Google.Protobuf;
using Grpc.Core;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Transport;
using Pollen.Training.Protos;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative.Network;

/// <summary>What an all-reduce produced and cost.</summary>
public sealed record AllReduceResult(Tensor Combined, long BytesSent, long BytesReceived, IReadOnlyList<int> ContributorsPerSlice, IReadOnlyList<string> Unreachable);

/// <summary>Options of one all-reduce.</summary>
public sealed record AllReduceOptions
{
    /// <summary>Encoding of parts and results (default f32).</summary>
    public DeltaCompression Compression { get; init; } = DeltaCompression.F32;

    /// <summary>How each slice's parts are combined (default mean).</summary>
    public Aggregation Aggregation { get; init; } = Aggregation.Mean;

    /// <summary>
    /// How long a reducer waits for parts before it combines what arrived; fetching the results may take as
    /// long again. A member that is later than this is dropped from the round. Default 30 s.
    /// </summary>
    public TimeSpan PartTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Butterfly all-reduce over gRPC (as hivemind's): the flat delta is cut into one slice per member;
/// every member sends slice k to member k, member k combines its slice from the parts that arrive by
/// the deadline, and everyone fetches every combined slice. A slice whose reducer cannot be reached
/// counts as zero for everyone, so all members still apply identical values; a member that sends
/// nothing is simply left out of the combinations. Parts are signed; the reducer checks membership.
/// </summary>
public static class ButterflyAllReduce
{
    /// <summary>Averages <paramref name="delta"/> (1-D float32) with the group; returns the combination (owned by the caller).</summary>
    public static async Task<AllReduceResult> RunAsync(AveragingHub hub, NodeIdentity identity, AveragingGroup group, Tensor delta, AllReduceOptions options,
        PeerChannelPool channels, CancellationToken cancellationToken)
    {
        var me = group.IndexOf(identity.PeerId);
        if (me < 0)
        {
            throw new ArgumentException("this peer is not a member of the group", nameof(group));
        }
        var n = group.Members.Count;
        var length = delta.shape[0];
        var payloads = new ByteString[n];
        Tensor ownPart;
        using (var scope = NewDisposeScope())
        {
            for (var k = 0; k < n; k++)
            {
                var (start, count) = group.Slice(k, length);
                payloads[k] = ByteString.CopyFrom(DeltaCodec.Encode(delta.narrow(0, start, count).contiguous(), options.Compression));
            }
            // the reducer's own part goes through the codec like everyone else's
            ownPart = DeltaCodec.Decode(payloads[me].Span, options.Compression, group.Slice(me, length).Length).DetachFromDisposeScope();
        }
        hub.Register(group, me, ownPart, options.Compression, options.Aggregation, options.PartTimeout);
        var unreachable = new System.Collections.Concurrent.ConcurrentBag<string>();
        long sent = 0, received = 0;

        // scatter: my part of slice k to member k
        var compression = AveragingHub.ToWire(options.Compression);
        await Task.WhenAll(Enumerable.Range(0, n).Where(k => k != me).Select(async k =>
        {
            var reference = new SliceRef { RunId = group.RunId, Round = group.Round, GroupId = ByteString.CopyFrom(group.GroupId), Slice = k };
            var count = group.Slice(k, length).Length;
            var request = new PartRequest
            {
                Ref = reference,
                SenderPublicKey = ByteString.CopyFrom(identity.PublicKey),
                Compression = compression,
                Elements = count,
                Payload = payloads[k],
                Signature = ByteString.CopyFrom(identity.Sign(AveragingHub.SignedBytes(reference, compression, count, payloads[k]))),
            };
            try
            {
                var client = new Averaging.AveragingClient(channels.Get(group.Members[k].Address));
                await client.PutPartAsync(request, deadline: DateTime.UtcNow + options.PartTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
                Interlocked.Add(ref sent, payloads[k].Length);
            }
            catch (Exception e) when (IsPeerFailure(e, cancellationToken))
            {
                unreachable.Add(group.Members[k].PeerId);
            }
        })).ConfigureAwait(false);

        // gather: every reduced slice (mine from the hub)
        var slices = new ByteString?[n];
        var contributors = new int[n];
        await Task.WhenAll(Enumerable.Range(0, n).Select(async k =>
        {
            var reference = new SliceRef { RunId = group.RunId, Round = group.Round, GroupId = ByteString.CopyFrom(group.GroupId), Slice = k };
            try
            {
                var client = new Averaging.AveragingClient(channels.Get(group.Members[k].Address));
                var reply = k == me
                    ? await hub.GetReducedAsync(new ReducedRequest { Ref = reference }, cancellationToken).ConfigureAwait(false)
                    : await client.GetReducedAsync(new ReducedRequest { Ref = reference }, deadline: DateTime.UtcNow + (2 * options.PartTimeout), cancellationToken: cancellationToken).ConfigureAwait(false);
                if (reply.Compression != compression || reply.Elements != group.Slice(k, length).Length || reply.Contributors < 1 || reply.Contributors > n)
                {
                    throw new RpcException(new Status(StatusCode.DataLoss, $"member {k} returned a slice that does not match the round"));
                }
                slices[k] = reply.Payload;
                contributors[k] = reply.Contributors;
                if (k != me)
                {
                    Interlocked.Add(ref received, reply.Payload.Length);
                }
            }
            catch (Exception e) when (IsPeerFailure(e, cancellationToken))
            {
                unreachable.Add(group.Members[k].PeerId);
            }
        })).ConfigureAwait(false);

        using var assemble = NewDisposeScope();
        var parts = new List<Tensor>(n);
        for (var k = 0; k < n; k++)
        {
            var count = group.Slice(k, length).Length;
            Tensor? part = null;
            if (slices[k] is { } bytes)
            {
                try
                {
                    part = DeltaCodec.Decode(bytes.Span, options.Compression, count);
                }
                catch (InvalidDataException)
                {
                    unreachable.Add(group.Members[k].PeerId);
                    contributors[k] = 0;
                }
            }
            parts.Add(part ?? zeros(count, dtype: ScalarType.Float32)); // a lost slice is zero for everyone
        }
        var combined = cat(parts, 0).MoveToOuterDisposeScope();
        return new AllReduceResult(combined, sent, received, contributors, [.. unreachable.Distinct()]);
    }

    private static bool IsPeerFailure(Exception e, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested && e is RpcException or IOException or HttpRequestException or OperationCanceledException or ObjectDisposedException;
}
