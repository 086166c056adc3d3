using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Identity;

namespace Pollen.Tests.Swarm;

/// <summary>A peer that accepts connections but never answers: every call ends at its deadline, the peer is banned and dropped, and lookups go on without it.</summary>
public sealed class TransportFaultTests : IAsyncLifetime
{
    private static readonly TimeSpan RpcTimeout = TimeSpan.FromMilliseconds(500);
    private readonly TcpListener _blackHole = new(IPAddress.Loopback, 0);
    private TestSwarm _swarm = null!;

    private string BlackHole => $"127.0.0.1:{((IPEndPoint)_blackHole.LocalEndpoint).Port}";

    public async ValueTask InitializeAsync()
    {
        _blackHole.Start(); // the kernel completes TCP handshakes; nothing ever reads or writes
        _swarm = await TestSwarm.StartAsync(5, configure: o => o.RpcTimeout = RpcTimeout, seed: 12);
    }

    public async ValueTask DisposeAsync()
    {
        _blackHole.Stop();
        await _swarm.DisposeAsync();
    }

    [Fact]
    public async Task CallsToASilentPeerEndAtTheDeadlineAndBanIt()
    {
        var ct = TestContext.Current.CancellationToken;
        var node = _swarm[0].Dht;
        var watch = Stopwatch.StartNew();
        Assert.Null(await node.PingAsync(BlackHole, ct));
        Assert.InRange(watch.Elapsed, RpcTimeout * 0.8, TimeSpan.FromSeconds(4));
        Assert.True(node.Bans.IsBanned(BlackHole));
        Assert.NotNull(await node.PingAsync(_swarm[1].Address, ct)); // other peers are unaffected
    }

    [Fact]
    public async Task LookupsRouteAroundASilentPeerInTheRoutingTable()
    {
        var ct = TestContext.Current.CancellationToken;
        var node = _swarm[0].Dht;
        await _swarm[2].Dht.PutAsync("around", "s", [4], DateTimeOffset.UtcNow.AddMinutes(30), ct);

        // a silent contact in the routing table; with 5 peers and k = 20 a node lookup asks every contact
        using var ghost = NodeIdentity.CreateEphemeral();
        node.Learn(new Contact(ghost.PeerId, ghost.PublicKey, BlackHole));
        Assert.True(node.Routing.Contains(ghost.PeerId));

        var watch = Stopwatch.StartNew();
        var closest = await node.FindNodeAsync(DhtId.ForKey("around"), ct);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4), $"lookup took {watch.Elapsed}");
        Assert.Equal(4, closest.Closest.Count);
        Assert.DoesNotContain(closest.Closest, c => c.PeerId == ghost.PeerId);
        Assert.False(node.Routing.Contains(ghost.PeerId));
        Assert.Equal(new byte[] { 4 }, Assert.Single((await node.GetAsync("around", ct)).Entries).Value);
        Assert.True(node.Bans.IsBanned(BlackHole));
    }
}
