using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Pollen.Swarm.Announcements;

namespace Pollen.Tests.Swarm;

/// <summary>Expiry, republishing and announcement refresh on a swarm that shares a <see cref="FakeTimeProvider"/>: no waiting for real time.</summary>
public sealed class ExpiryAndRefreshTests
{
    [Fact]
    public async Task RecordOfAPeerThatDiedDisappearsEverywhereAfterItsExpiration()
    {
        var ct = TestContext.Current.CancellationToken;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var swarm = await TestSwarm.StartAsync(10, time, seed: 5, cancellationToken: ct);
        await swarm[3].Dht.PutOwnAsync("short-lived", [7], time.GetUtcNow() + TimeSpan.FromMinutes(10), ct);
        await swarm.KillAsync(3);

        foreach (var reader in swarm.Alive)
        {
            Assert.Single((await reader.Dht.GetAsync("short-lived", ct)).Entries);
        }
        time.Advance(TimeSpan.FromMinutes(9));
        Assert.Single((await swarm[0].Dht.GetAsync("short-lived", ct)).Entries);

        time.Advance(TimeSpan.FromMinutes(1));
        foreach (var reader in swarm.Alive)
        {
            Assert.Empty((await reader.Dht.GetAsync("short-lived", ct)).Entries);
        }
        Assert.Empty(swarm.Holders("short-lived"));
    }

    [Fact]
    public async Task RepublishingRestoresReplicationAfterReplicasLeave()
    {
        var ct = TestContext.Current.CancellationToken;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        // k = 3 so that losing two replicas leaves a single copy
        await using var swarm = await TestSwarm.StartAsync(12, time, o =>
        {
            o.BucketSize = 3;
            o.RefreshInterval = TimeSpan.FromMinutes(10);
            o.RepublishInterval = TimeSpan.FromMinutes(10);
        }, seed: 9, cancellationToken: ct);
        var writer = swarm.AliveIndexes.First(i => !swarm.Holders("precious").Contains(i));
        var summary = await swarm[writer].Dht.PutAsync("precious", "s", [1], time.GetUtcNow() + TimeSpan.FromHours(2), ct);
        Assert.Equal(3, summary.Replicas);
        var holders = swarm.Holders("precious");
        Assert.Equal(3, holders.Count);

        await swarm.KillAsync(holders[0]);
        await swarm.KillAsync(holders[1]);
        Assert.Equal([holders[2]], swarm.Holders("precious"));

        time.Advance(TimeSpan.FromMinutes(10));
        await TestSwarm.WaitUntilAsync(() => swarm.Holders("precious").Count >= 3, TimeSpan.FromSeconds(20), "the survivor to republish to the new 3 closest");

        await swarm.KillAsync(holders[2]);
        // every survivor finds the value; a reader whose routing table still lacks the new replicas
        // learns them from its own lookups, so allow a few rounds on a loaded machine
        foreach (var reader in swarm.Alive)
        {
            byte[]? found = null;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (found is null && DateTime.UtcNow < deadline)
            {
                var entries = (await reader.Dht.GetAsync("precious", ct)).Entries;
                found = entries.Count == 1 ? entries[0].Value : null;
            }
            Assert.Equal(new byte[] { 1 }, found);
        }
    }

    [Fact]
    public async Task BucketRefreshFillsEveryBucketAsFarAsTheSwarmAllows()
    {
        var ct = TestContext.Current.CancellationToken;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        const int k = 4;
        // small buckets, so that joining alone leaves the far buckets short of what the swarm has
        await using var swarm = await TestSwarm.StartAsync(24, time, o =>
        {
            o.BucketSize = k;
            o.RefreshInterval = TimeSpan.FromMinutes(10);
            o.RepublishInterval = TimeSpan.FromHours(1);
        }, seed: 6, cancellationToken: ct);
        var node = swarm[23].Dht;
        var others = swarm.Alive.Where(n => n.Dht != node).Select(n => n.PeerId.Id).ToList();
        bool BucketsFull() => Enumerable.Range(0, 256).All(i =>
        {
            var exist = others.Count(id => node.Routing.BucketIndex(id) == i);
            var known = node.Routing.All().Count(c => node.Routing.BucketIndex(c.Id) == i);
            return known == Math.Min(k, exist);
        });
        TestContext.Current.TestOutputHelper?.WriteLine($"buckets full right after joining: {BucketsFull()}");

        time.Advance(TimeSpan.FromMinutes(10));
        await TestSwarm.WaitUntilAsync(BucketsFull, TimeSpan.FromSeconds(20), "the refresh to fill every bucket");
    }

    [Fact]
    public async Task AnnouncementsAreRefreshedWhileTheNodeLivesAndExpireAfterItStops()
    {
        var ct = TestContext.Current.CancellationToken;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var swarm = await TestSwarm.StartAsync(6, time, seed: 2, cancellationToken: ct);
        var node = swarm[2];
        var ttl = TimeSpan.FromMinutes(3);
        var served = 0;
        var announcer = Announcer.Start(node.Dht, () => new PeerAnnouncement
        {
            PeerId = node.PeerId.ToString(),
            Address = node.Address,
            Version = PeerDirectory.SoftwareVersion,
            Role = "server",
            Serves = [$"tiny/block/0..{++served}"],
            FreeMemoryBytes = 1 << 30,
        }, ttl, time, NullLogger.Instance);
        try
        {
            await TestSwarm.WaitUntilAsync(() => announcer.Published == 1, TimeSpan.FromSeconds(10), "the first announcement");
            var listed = Assert.Single(await PeerDirectory.ListAsync(swarm[5].Dht, ct));
            Assert.Equal(node.PeerId.ToString(), listed.PeerId);
            Assert.Equal(node.Address, listed.Address);
            Assert.Equal("server", listed.Role);
            Assert.Equal(1L << 30, listed.FreeMemoryBytes);

            // six refresh periods = two TTLs: still listed, with fresh content and a later expiration
            for (var i = 2; i <= 7; i++)
            {
                time.Advance(ttl / 3);
                var expected = i;
                await TestSwarm.WaitUntilAsync(() => announcer.Published >= expected, TimeSpan.FromSeconds(10), $"announcement {expected}");
            }
            listed = Assert.Single(await PeerDirectory.ListAsync(swarm[4].Dht, ct));
            Assert.Equal(["tiny/block/0..7"], listed.Serves);
            Assert.True(listed.Expiration > time.GetUtcNow() + ttl / 2);
        }
        finally
        {
            await announcer.DisposeAsync();
        }

        time.Advance(ttl);
        Assert.Empty(await PeerDirectory.ListAsync(swarm[4].Dht, ct));
    }
}
