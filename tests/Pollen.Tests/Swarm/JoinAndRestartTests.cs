using Pollen.Swarm;

namespace Pollen.Tests.Swarm;

/// <summary>Founding, joining, and a peer that restarts with the identity in its home directory.</summary>
public sealed class JoinAndRestartTests
{
    private static DateTimeOffset Soon => DateTimeOffset.UtcNow + TimeSpan.FromMinutes(30);

    [Fact]
    public async Task ALonePeerFoundsASwarmAndServesItsOwnRecords()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var swarm = await TestSwarm.StartAsync(1, cancellationToken: ct);
        var summary = await swarm[0].Dht.PutAsync("solo", "s", [5], Soon, ct);
        Assert.Equal(1, summary.Replicas);
        Assert.Equal(new byte[] { 5 }, Assert.Single((await swarm[0].Dht.GetAsync("solo", ct)).Entries).Value);
    }

    [Fact]
    public async Task JoiningThroughPeersThatDoNotAnswerFailsWithAHint()
    {
        var options = new SwarmOptions { Home = Path.Combine(Path.GetTempPath(), "pollen-join-" + Guid.NewGuid().ToString("N")), ListenAddress = "127.0.0.1" };
        options.InitialPeers.Add("127.0.0.1:1");
        try
        {
            var e = await Assert.ThrowsAsync<SwarmUnavailableException>(() => SwarmNode.StartAsync(options, cancellationToken: TestContext.Current.CancellationToken));
            Assert.Contains("127.0.0.1:1: Unavailable", e.Message); // names why the peer did not answer
            Assert.Contains("without --initial-peers", e.Message);
        }
        finally
        {
            Directory.Delete(options.Home, recursive: true);
        }
    }

    [Fact]
    public async Task ARestartedPeerKeepsItsIdentityAndRejoins()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var swarm = await TestSwarm.StartAsync(8, seed: 4, cancellationToken: ct);
        var before = swarm[5].PeerId;
        await swarm[5].Dht.PutOwnAsync("restart", [1], Soon, ct);
        await swarm.KillAsync(5);
        Assert.False(swarm.IsAlive(5));

        var restarted = await swarm.RestartAsync(5, ct);
        Assert.Equal(before, restarted.PeerId);
        // it can write its own subkey again (same key), and everyone sees the newer value
        await restarted.Dht.PutOwnAsync("restart", [2], Soon + TimeSpan.FromMinutes(1), ct);
        foreach (var reader in swarm.Alive)
        {
            Assert.Equal(new byte[] { 2 }, Assert.Single((await reader.Dht.GetAsync("restart", ct)).Entries).Value);
        }
        // and the others can reach it again
        Assert.NotNull(await swarm[0].Dht.PingAsync(restarted.Address, ct));
        Assert.Contains(swarm.Alive, n => n != restarted && n.Dht.Routing.Contains(restarted.PeerId));
    }

    [Fact]
    public async Task APeerRestartedOnAnotherPortIsFoundAtItsNewAddress()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var swarm = await TestSwarm.StartAsync(6, seed: 8, cancellationToken: ct);
        var oldAddress = swarm[3].Address;
        await swarm.KillAsync(3);
        using (var squatter = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, int.Parse(oldAddress.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture)))
        {
            squatter.Start(); // the old port is taken, so the restart gets a new one
            var restarted = await swarm.RestartAsync(3, ct);
            Assert.NotEqual(oldAddress, restarted.Address);
            squatter.Stop();
        }
        var moved = swarm[3];
        // joining, it called peer 0, which still knew it at the old address: peer 0 pings the old
        // address rather than trusting the claim, and drops it when that fails
        await TestSwarm.WaitUntilAsync(
            () => !swarm[0].Dht.Routing.All().Any(c => c.Address == oldAddress),
            TimeSpan.FromSeconds(20), "peer 0 to drop the old address");
        // the next message from the peer puts it back at its new address
        Assert.NotNull(await moved.Dht.PingAsync(swarm[0].Address, ct));
        Assert.Contains(swarm[0].Dht.Routing.All(), c => c.PeerId == moved.PeerId && c.Address == moved.Address);
        await moved.Dht.PutOwnAsync("moved", [3], Soon, ct);
        Assert.Single((await swarm[1].Dht.GetAsync("moved", ct)).Entries);
    }
}
