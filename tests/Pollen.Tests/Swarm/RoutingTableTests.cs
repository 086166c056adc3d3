using Microsoft.Extensions.Time.Testing;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Transport;

namespace Pollen.Tests.Swarm;

public sealed class RoutingTableTests
{
    private static Contact ContactAt(DhtId self, int prefix, int n) =>
        new(new PeerId(self.RandomWithCommonPrefix(prefix)), [], $"127.0.0.1:{1000 + n}");

    [Fact]
    public void FullBucketKeepsOldContactsAndQueuesNewcomersUntilOneFails()
    {
        var self = DhtId.Random();
        var table = new RoutingTable(self, bucketSize: 3);
        var contacts = Enumerable.Range(0, 5).Select(i => ContactAt(self, 0, i)).ToList();
        Assert.Equal(TouchResult.Added, table.Touch(contacts[0], out _));
        table.Touch(contacts[1], out _);
        table.Touch(contacts[2], out _);
        Assert.Equal(TouchResult.Updated, table.Touch(contacts[0], out _)); // 0 becomes most recently seen

        Assert.Equal(TouchResult.BucketFull, table.Touch(contacts[3], out var oldest));
        Assert.Equal(contacts[1], oldest);
        Assert.False(table.Contains(contacts[3].PeerId));
        Assert.Equal(TouchResult.BucketFull, table.Touch(contacts[4], out _));

        // the oldest did not answer its ping: removed, newest replacement promoted
        Assert.True(table.Remove(contacts[1].PeerId));
        Assert.True(table.Contains(contacts[4].PeerId));
        Assert.Equal(3, table.Count);
        Assert.Equal(TouchResult.Self, table.Touch(new Contact(new PeerId(self), [], "127.0.0.1:1"), out _));
    }

    [Fact]
    public void AKnownPeerIsNotMovedToANewAddressUntilItsOldOneFails()
    {
        var self = DhtId.Random();
        var table = new RoutingTable(self, bucketSize: 3);
        var peer = ContactAt(self, 1, 0);
        table.Touch(peer, out _);
        var claimed = peer with { Address = "10.6.6.6:6666" };
        Assert.Equal(TouchResult.AddressConflict, table.Touch(claimed, out var known));
        Assert.Equal(peer, known);
        Assert.Equal(peer.Address, Assert.Single(table.All()).Address);

        // the old address stopped answering (e.g. a restart on another port): then the new one is learned
        table.Remove(peer.PeerId);
        Assert.Equal(TouchResult.Added, table.Touch(claimed, out _));
        Assert.Equal(claimed.Address, Assert.Single(table.All()).Address);
    }

    [Fact]
    public void ClosestAreOrderedByXorDistance()
    {
        var self = DhtId.Random();
        var table = new RoutingTable(self, bucketSize: 20);
        for (var i = 0; i < 200; i++)
        {
            table.Touch(new Contact(new PeerId(DhtId.Random()), [], $"127.0.0.1:{2000 + i}"), out _);
        }
        var target = DhtId.Random();
        var closest = table.Closest(target, 20);
        Assert.Equal(20, closest.Count);
        Assert.Equal(table.All().OrderBy(c => c.Id.Xor(target)).Take(20), closest);
        Assert.Equal(table.All().Count, table.Count);
    }

    [Fact]
    public void StaleBucketsAreThoseWithoutARecentLookup()
    {
        var time = new FakeTimeProvider();
        var self = DhtId.Random();
        var table = new RoutingTable(self, 20);
        table.Touch(ContactAt(self, 3, 0), out _);
        Assert.Equal([0, 1, 2, 3], table.StaleBuckets(time.GetUtcNow()));
        table.MarkLookup(self.RandomWithCommonPrefix(2), time.GetUtcNow());
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal([0, 1, 3], table.StaleBuckets(time.GetUtcNow() - TimeSpan.FromMinutes(5)));
        Assert.Equal([0, 1, 2, 3], table.StaleBuckets(time.GetUtcNow()));
    }

    [Fact]
    public void BansGrowExponentiallyToTheCapAndClearOnSuccess()
    {
        var time = new FakeTimeProvider();
        var bans = new PeerBans(time, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(30));
        Assert.Equal(TimeSpan.FromSeconds(2), bans.RecordFailure("a:1"));
        Assert.Equal(TimeSpan.FromSeconds(4), bans.RecordFailure("a:1"));
        Assert.Equal(TimeSpan.FromSeconds(8), bans.RecordFailure("a:1"));
        Assert.True(bans.IsBanned("a:1"));
        Assert.False(bans.IsBanned("b:1"));
        time.Advance(TimeSpan.FromSeconds(8));
        Assert.False(bans.IsBanned("a:1"));
        Assert.Equal(TimeSpan.FromSeconds(16), bans.RecordFailure("a:1"));
        Assert.Equal(TimeSpan.FromSeconds(30), bans.RecordFailure("a:1"));
        bans.RecordSuccess("a:1");
        Assert.False(bans.IsBanned("a:1"));
        Assert.Equal(TimeSpan.FromSeconds(2), bans.RecordFailure("a:1"));
    }
}

public sealed class PeerChannelPoolTests
{
    [Fact]
    public void PoolClosesTheLeastRecentlyUsedChannelBeyondItsCap()
    {
        using var pool = new PeerChannelPool(1 << 20, TimeSpan.FromSeconds(1), maxChannels: 2);
        var a = pool.Get("127.0.0.1:1001");
        var b = pool.Get("127.0.0.1:1002");
        Assert.Same(a, pool.Get("127.0.0.1:1001")); // a is now the most recently used
        pool.Get("127.0.0.1:1003"); // evicts b
        Assert.Equal(2, pool.Count);
        Assert.Same(a, pool.Get("127.0.0.1:1001"));
        Assert.NotSame(b, pool.Get("127.0.0.1:1002"));
    }
}
