using Google.Protobuf;
using Grpc.Core;
using Pollen.Swarm;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Transport;
using Pollen.Training.Collaborative;
using Pollen.Training.Collaborative.Network;
using Pollen.Training.Protos;
using static TorchSharp.torch;

namespace Pollen.Tests.Training;

/// <summary>Butterfly all-reduce between real swarm peers on 127.0.0.1.</summary>
public sealed class AllReduceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(DeltaCompression.F32, 1e-6)]
    [InlineData(DeltaCompression.Int8, 2e-2)]
    public async Task ThreePeersGetTheMeanAndAgreeBitForBit(DeltaCompression compression, double tolerance)
    {
        await using var peers = await AveragingPeers.StartAsync(3);
        var group = peers.Group("run", 0);
        manual_seed(1);
        var deltas = Enumerable.Range(0, 3).Select(_ => randn(1001)).ToArray();
        var options = new AllReduceOptions { Compression = compression, PartTimeout = TimeSpan.FromSeconds(20) };
        var results = await Task.WhenAll(peers.Select((p, i) => p.RunAsync(group, deltas[i], options)));
        using var mean = stack(deltas).mean([0]);
        foreach (var result in results)
        {
            Assert.True(Same(results[0].Combined, result.Combined), "members hold different results");
            var error = (result.Combined - mean).abs().max().item<float>();
            Assert.True(error <= tolerance, $"{compression}: max error {error}");
            Assert.Equal([3, 3, 3], result.ContributorsPerSlice);
            Assert.Empty(result.Unreachable);
            // two of three slices go out and come back
            var expected = DeltaCodec.EncodedSize(1001, compression) * 2 / 3;
            Assert.InRange(result.BytesSent, expected - 16, expected + 16);
            Assert.InRange(result.BytesReceived, expected - 16, expected + 16);
        }
    }

    [Fact]
    public async Task ADeadMemberIsDroppedAndTheOthersFinishWithinTheDeadline()
    {
        await using var peers = await AveragingPeers.StartAsync(3);
        var group = peers.Group("run", 4);
        await peers.KillAsync(2); // dies after matchmaking, before the all-reduce
        manual_seed(2);
        var deltas = Enumerable.Range(0, 2).Select(_ => randn(900)).ToArray();
        var options = new AllReduceOptions { PartTimeout = TimeSpan.FromSeconds(1) };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var results = await Task.WhenAll(Enumerable.Range(0, 2).Select(i => peers[i].RunAsync(group, deltas[i], options)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        var dead = group.IndexOf(peers[2].Identity.PeerId);
        using var mean = stack(deltas).mean([0]);
        foreach (var result in results)
        {
            Assert.True(Same(results[0].Combined, result.Combined));
            Assert.False(result.Combined.isnan().any().item<bool>());
            Assert.Contains(peers[2].Identity.PeerId.ToString(), result.Unreachable);
            for (var k = 0; k < 3; k++)
            {
                var (start, length) = group.Slice(k, 900);
                using var slice = result.Combined.narrow(0, start, length);
                if (k == dead)
                {
                    Assert.Equal(0, result.ContributorsPerSlice[k]);
                    Assert.Equal(0f, slice.abs().max().item<float>()); // its slice is lost: zero for everyone
                }
                else
                {
                    Assert.Equal(2, result.ContributorsPerSlice[k]);
                    Assert.True(allclose(slice, mean.narrow(0, start, length), 1e-6, 1e-6));
                }
            }
        }
    }

    [Fact]
    public async Task ARoundOfOnePeerIsItsOwnDelta()
    {
        await using var peers = await AveragingPeers.StartAsync(1);
        using var delta = randn(10);
        var result = await peers[0].RunAsync(peers.Group("solo", 0), delta, new AllReduceOptions());
        Assert.True(Same(delta, result.Combined));
        Assert.Equal(0, result.BytesSent);
    }

    [Fact]
    public async Task MedianOutvotesAMemberSendingAHundredTimesItsDelta()
    {
        await using var peers = await AveragingPeers.StartAsync(3);
        var group = peers.Group("robust", 0);
        manual_seed(3);
        var honest = randn(300);
        var deltas = new[] { honest + (randn(300) * 0.01), honest + (randn(300) * 0.01), honest * 100 };
        var median = await Task.WhenAll(peers.Select((p, i) => p.RunAsync(group, deltas[i], new AllReduceOptions { Aggregation = Aggregation.Median })));
        var error = (median[0].Combined - honest).abs().max().item<float>();
        Assert.True(error < 0.1, $"median strayed by {error}");
        var meanGroup = peers.Group("robust", 1);
        var mean = await Task.WhenAll(peers.Select((p, i) => p.RunAsync(meanGroup, deltas[i], new AllReduceOptions())));
        Assert.True((mean[0].Combined - honest).abs().max().item<float>() > 10, "the plain mean should be dragged away");
    }

    [Fact]
    public async Task BadPartsAreRefusedAndTheRoundStillCompletes()
    {
        await using var peers = await AveragingPeers.StartAsync(3);
        var group = peers.Group("run", 7);
        var reducer = group.IndexOf(peers[0].Identity.PeerId);
        var sender = peers[group.Members.Select((m, i) => (m, i)).First(x => x.i != reducer).m.PeerId == peers[1].Identity.PeerId.ToString() ? 1 : 2];
        var length = 600L;
        var sliceLength = group.Slice(reducer, length).Length;
        // peer 0 starts its round; peers 1 and 2 send their parts later
        using var own = zeros(length);
        var running = peers[0].RunAsync(group, own, new AllReduceOptions { PartTimeout = TimeSpan.FromSeconds(30) });

        var client = new Averaging.AveragingClient(peers.Channels.Get(peers[0].Address));
        async Task<StatusCode> PutAsync(PartRequest request, TimeSpan? deadline = null)
        {
            var e = await Assert.ThrowsAsync<RpcException>(async () => await client.PutPartAsync(request, deadline: DateTime.UtcNow + (deadline ?? TimeSpan.FromSeconds(10)), cancellationToken: Ct));
            Assert.NotEmpty(e.Status.Detail);
            return e.StatusCode;
        }
        using var stranger = NodeIdentity.CreateEphemeral();
        using var values = ones(sliceLength);
        Assert.Equal(StatusCode.PermissionDenied, await PutAsync(Part(group, reducer, values, stranger)));
        var forged = Part(group, reducer, values, sender.Identity);
        forged.Payload = ByteString.CopyFrom(DeltaCodec.Encode(values * 2, DeltaCompression.F32)); // signature no longer matches
        Assert.Equal(StatusCode.PermissionDenied, await PutAsync(forged));
        using var nan = full(sliceLength, float.NaN);
        Assert.Equal(StatusCode.InvalidArgument, await PutAsync(Part(group, reducer, nan, sender.Identity)));
        using var shorter = ones(sliceLength - 1);
        Assert.Equal(StatusCode.InvalidArgument, await PutAsync(Part(group, reducer, shorter, sender.Identity)));
        Assert.Equal(StatusCode.InvalidArgument, await PutAsync(Part(group, reducer == 0 ? 1 : 0, values, sender.Identity)));
        var otherGroup = new AveragingGroup("run", 7, group.Members.Take(2));
        Assert.Equal(StatusCode.FailedPrecondition, await PutAsync(Part(otherGroup, reducer, values, sender.Identity)));
        Assert.Equal(StatusCode.FailedPrecondition, await PutAsync(Part(peers.Group("run", 8), reducer, values, sender.Identity), TimeSpan.FromMilliseconds(500)));
        using var huge = ones(3 << 20); // 12 MiB: over the 4 MiB cap of this test's peers
        Assert.Equal(StatusCode.ResourceExhausted, await PutAsync(Part(group, reducer, huge, sender.Identity)));

        // the real members' parts are still accepted and the round completes
        var others = await Task.WhenAll(new[] { peers[1], peers[2] }.Select(p => p.RunAsync(group, ones(length), new AllReduceOptions { PartTimeout = TimeSpan.FromSeconds(30) })));
        var result = await running;
        Assert.Equal([3, 3, 3], result.ContributorsPerSlice);
        Assert.True(Same(result.Combined, others[0].Combined));
        Assert.True(allclose(result.Combined, full(length, 2f / 3)));
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && (a == b).all().item<bool>();

    private static PartRequest Part(AveragingGroup group, int slice, Tensor values, NodeIdentity identity)
    {
        var reference = new SliceRef { RunId = group.RunId, Round = group.Round, GroupId = ByteString.CopyFrom(group.GroupId), Slice = slice };
        var payload = ByteString.CopyFrom(DeltaCodec.Encode(values.contiguous(), DeltaCompression.F32));
        return new PartRequest
        {
            Ref = reference,
            SenderPublicKey = ByteString.CopyFrom(identity.PublicKey),
            Compression = Compression.F32,
            Elements = values.shape[0],
            Payload = payload,
            Signature = ByteString.CopyFrom(identity.Sign(AveragingHub.SignedBytes(reference, Compression.F32, values.shape[0], payload))),
        };
    }
}

/// <summary>N swarm peers on 127.0.0.1, each serving averaging with its own hub and identity.</summary>
internal sealed class AveragingPeers : IAsyncDisposable, IEnumerable<AveragingPeer>
{
    private readonly List<AveragingPeer> _peers = [];

    public PeerChannelPool Channels { get; } = new(AveragingServing.DefaultMaxMessageBytes, TimeSpan.FromSeconds(2), 64);

    public AveragingPeer this[int index] => _peers[index];

    public static async Task<AveragingPeers> StartAsync(int count)
    {
        var peers = new AveragingPeers();
        for (var i = 0; i < count; i++)
        {
            var identity = NodeIdentity.CreateEphemeral();
            var hub = new AveragingHub();
            var options = new SwarmOptions { ListenAddress = "127.0.0.1", Home = Path.GetTempPath() };
            var node = await SwarmNode.StartAsync(options, identity, services: AveragingServing.Services(hub, 4 << 20), cancellationToken: TestContext.Current.CancellationToken);
            peers._peers.Add(new AveragingPeer(node, identity, hub, peers.Channels));
        }
        return peers;
    }

    public AveragingGroup Group(string run, long round) => new(run, round, _peers.Select(p => new GroupMember(p.Identity.PeerId.ToString(), p.Address)));

    public Task KillAsync(int index) => _peers[index].DisposeAsync().AsTask();

    public async ValueTask DisposeAsync()
    {
        foreach (var peer in _peers)
        {
            await peer.DisposeAsync();
        }
        Channels.Dispose();
    }

    public IEnumerator<AveragingPeer> GetEnumerator() => _peers.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

internal sealed class AveragingPeer(SwarmNode node, NodeIdentity identity, AveragingHub hub, PeerChannelPool channels) : IAsyncDisposable
{
    private bool _disposed;

    public NodeIdentity Identity { get; } = identity;

    public string Address { get; } = node.Address;

    public Task<AllReduceResult> RunAsync(AveragingGroup group, Tensor delta, AllReduceOptions options) =>
        ButterflyAllReduce.RunAsync(hub, Identity, group, delta, options, channels, TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        await node.DisposeAsync();
        hub.Dispose();
        Identity.Dispose();
    }
}
