using System.Diagnostics;
using System.Text;
using Pollen.Swarm.Records;

namespace Pollen.Tests.Swarm;

/// <summary>The DHT on 50 in-process peers: reachability of values from everywhere, hop bounds, and churn.</summary>
public sealed class DhtSwarmTests
{
    private static readonly TimeSpan Ttl = TimeSpan.FromHours(1);

    [Fact]
    public async Task FiftyNodes_ValueStoredThroughAnyNodeIsFoundFromEveryNode_InLogarithmicHops()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var swarm = await TestSwarm.StartAsync(50, seed: 7, cancellationToken: ct);
        var writers = swarm.PickAlive(5);
        foreach (var w in writers)
        {
            var summary = await swarm[w].Dht.PutAsync($"key-{w}", "v", Encoding.UTF8.GetBytes($"value from {w}"), DateTimeOffset.UtcNow + Ttl, ct);
            // replicated to k = 20 peers
            Assert.Equal(20, summary.Replicas);
        }

        var hops = new List<int>();
        var messages = new List<int>();
        var watch = Stopwatch.StartNew();
        foreach (var reader in swarm.AliveIndexes)
        {
            foreach (var w in writers)
            {
                var result = await swarm[reader].Dht.GetAsync($"key-{w}", ct);
                var entry = Assert.Single(result.Entries);
                Assert.Equal($"value from {w}", Encoding.UTF8.GetString(entry.Value));
                hops.Add(result.Hops);
                messages.Add(result.Messages);
            }
        }
        // node lookups run to completion (no early stop on a value): each must return exactly the 20
        // live peers closest to a random target, the writer excluded
        var nodeHops = new List<int>();
        foreach (var reader in swarm.PickAlive(20))
        {
            var target = Pollen.Swarm.Identity.DhtId.Random();
            var result = await swarm[reader].Dht.FindNodeAsync(target, ct);
            var expected = swarm.Alive.Where(n => n.PeerId != swarm[reader].PeerId).OrderBy(n => n.PeerId.Id.Xor(target)).Take(20).Select(n => n.PeerId);
            Assert.Equal(expected, result.Closest.Select(c => c.PeerId));
            nodeHops.Add(result.Hops);
        }
        hops.AddRange(nodeHops);

        // O(log N): with N = 50, log2 N ≈ 5.6; a lookup that needs more rounds is not converging
        var bound = (int)Math.Ceiling(Math.Log2(swarm.Count));
        Assert.True(hops.Max() <= bound, $"max hops {hops.Max()} > {bound} (mean {hops.Average():F2})");
        Assert.True(messages.Max() <= 2 * 20, $"a value lookup sent {messages.Max()} messages");
        TestContext.Current.TestOutputHelper?.WriteLine($"250 lookups in {watch.ElapsedMilliseconds} ms; hops mean {hops.Average():F2} max {hops.Max()}; messages mean {messages.Average():F1} max {messages.Max()}; FindNode hops mean {nodeHops.Average():F2} max {nodeHops.Max()}");
    }

    [Fact]
    public async Task KillingThirtyPercentOfFiftyNodes_KeepsEveryValueAndNewStoresSucceed()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var swarm = await TestSwarm.StartAsync(50, seed: 11, cancellationToken: ct);
        var keys = Enumerable.Range(0, 10).Select(i => $"before-{i}").ToList();
        foreach (var (key, writer) in keys.Zip(swarm.PickAlive(keys.Count)))
        {
            await swarm[writer].Dht.PutAsync(key, "v", Encoding.UTF8.GetBytes(key), DateTimeOffset.UtcNow + Ttl, ct);
        }

        foreach (var victim in swarm.PickAlive(15))
        {
            await swarm.KillAsync(victim);
        }
        Assert.Equal(35, swarm.AliveIndexes.Count);

        foreach (var reader in swarm.AliveIndexes)
        {
            foreach (var key in keys)
            {
                var result = await swarm[reader].Dht.GetAsync(key, ct);
                Assert.True(result.Entries.Count == 1, $"peer {reader} did not find {key}");
                Assert.Equal(key, Encoding.UTF8.GetString(result.Entries[0].Value));
            }
        }

        foreach (var writer in swarm.PickAlive(5))
        {
            var summary = await swarm[writer].Dht.PutAsync($"after-{writer}", "v", [1, 2, 3], DateTimeOffset.UtcNow + Ttl, ct);
            Assert.Equal(20, summary.Replicas); // 35 live peers: the 20 closest all answer
            foreach (var reader in swarm.PickAlive(10))
            {
                var found = await swarm[reader].Dht.GetAsync($"after-{writer}", ct);
                Assert.Equal(new byte[] { 1, 2, 3 }, Assert.Single(found.Entries).Value);
            }
        }
    }
}
