using System.Diagnostics;
using System.Text.Json.Nodes;
using Pollen.Swarm;
using Pollen.Swarm.Identity;

namespace Pollen.Bench;

/// <summary>
/// <c>pollen bench dht</c>: a swarm of in-process peers on loopback; lookup latency (median, p99), hops
/// and messages per lookup, next to the latency of a single Ping measured in the same run, so the
/// lookup cost shows as a ratio to one round trip.
/// </summary>
public static class DhtBench
{
    /// <summary>Settings of the scenario.</summary>
    /// <param name="Nodes">Peers to start.</param>
    /// <param name="Keys">Keys stored before measuring.</param>
    /// <param name="Lookups">Value lookups and node lookups measured (each).</param>
    /// <param name="Seed">Seed for the choice of readers and targets.</param>
    public sealed record Settings(int Nodes = 64, int Keys = 32, int Lookups = 500, int Seed = 0);

    /// <summary>Runs the scenario; returns its JSON object.</summary>
    public static async Task<JsonObject> RunAsync(Settings s, Action<string>? log, CancellationToken cancellationToken)
    {
        var home = Path.Combine(Path.GetTempPath(), "pollen-bench-dht-" + Guid.NewGuid().ToString("N"));
        var nodes = new List<SwarmNode>();
        var random = new Random(s.Seed);
        try
        {
            var startWatch = Stopwatch.StartNew();
            for (var i = 0; i < s.Nodes; i++)
            {
                var options = new SwarmOptions { Home = Path.Combine(home, $"peer-{i}"), ListenAddress = "127.0.0.1" };
                if (nodes.Count > 0)
                {
                    options.InitialPeers.Add(nodes[random.Next(nodes.Count)].Address);
                }
                nodes.Add(await SwarmNode.StartAsync(options, cancellationToken: cancellationToken).ConfigureAwait(false));
            }
            var startSeconds = startWatch.Elapsed.TotalSeconds;
            log?.Invoke($"started {s.Nodes} peers in {startSeconds:F1} s");

            var expiration = DateTimeOffset.UtcNow + TimeSpan.FromHours(1);
            for (var k = 0; k < s.Keys; k++)
            {
                await nodes[random.Next(nodes.Count)].Dht.PutAsync($"bench/{k}", "v", [(byte)k], expiration, cancellationToken).ConfigureAwait(false);
            }

            // baseline: one Ping between two random peers
            var ping = new List<double>();
            for (var i = 0; i < s.Lookups; i++)
            {
                var (a, b) = (nodes[random.Next(nodes.Count)], nodes[random.Next(nodes.Count)]);
                var watch = Stopwatch.StartNew();
                _ = await a.Dht.PingAsync(b.Address, cancellationToken).ConfigureAwait(false);
                ping.Add(watch.Elapsed.TotalMilliseconds);
            }

            var get = new List<(double Ms, int Hops, int Messages)>();
            var missing = 0;
            for (var i = 0; i < s.Lookups; i++)
            {
                var reader = nodes[random.Next(nodes.Count)];
                var watch = Stopwatch.StartNew();
                var result = await reader.Dht.GetAsync($"bench/{random.Next(s.Keys)}", cancellationToken).ConfigureAwait(false);
                get.Add((watch.Elapsed.TotalMilliseconds, result.Hops, result.Messages));
                missing += result.Entries.Count == 0 ? 1 : 0;
            }

            var findNode = new List<(double Ms, int Hops, int Messages)>();
            for (var i = 0; i < s.Lookups; i++)
            {
                var reader = nodes[random.Next(nodes.Count)];
                var watch = Stopwatch.StartNew();
                var result = await reader.Dht.FindNodeAsync(DhtId.Random(), cancellationToken).ConfigureAwait(false);
                findNode.Add((watch.Elapsed.TotalMilliseconds, result.Hops, result.Messages));
            }

            var pingMedian = Percentile(ping, 0.5);
            var getMedian = Percentile(get.Select(g => g.Ms), 0.5);
            log?.Invoke($"ping {pingMedian:F2} ms; get median {getMedian:F2} ms, {get.Average(g => g.Hops):F2} hops, {get.Average(g => g.Messages):F1} messages; find_node {findNode.Average(g => g.Hops):F2} hops");
            return new JsonObject
            {
                ["scenario"] = "dht",
                ["nodes"] = s.Nodes,
                ["k"] = nodes[0].Dht.K,
                ["keys"] = s.Keys,
                ["lookups"] = s.Lookups,
                ["start_s"] = Math.Round(startSeconds, 2),
                ["ping_median_ms"] = Math.Round(pingMedian, 3),
                ["get_median_ms"] = Math.Round(getMedian, 3),
                ["get_p99_ms"] = Math.Round(Percentile(get.Select(g => g.Ms), 0.99), 3),
                ["get_hops_mean"] = Math.Round(get.Average(g => g.Hops), 2),
                ["get_hops_max"] = get.Max(g => g.Hops),
                ["get_messages_mean"] = Math.Round(get.Average(g => g.Messages), 2),
                ["get_missing"] = missing,
                ["get_median_over_ping"] = Math.Round(getMedian / pingMedian, 2),
                ["find_node_median_ms"] = Math.Round(Percentile(findNode.Select(g => g.Ms), 0.5), 3),
                ["find_node_p99_ms"] = Math.Round(Percentile(findNode.Select(g => g.Ms), 0.99), 3),
                ["find_node_hops_mean"] = Math.Round(findNode.Average(g => g.Hops), 2),
                ["find_node_hops_max"] = findNode.Max(g => g.Hops),
                ["find_node_messages_mean"] = Math.Round(findNode.Average(g => g.Messages), 2),
            };
        }
        finally
        {
            await Task.WhenAll(nodes.Select(n => n.DisposeAsync().AsTask())).ConfigureAwait(false);
            if (Directory.Exists(home))
            {
                Directory.Delete(home, recursive: true);
            }
        }
    }

    private static double Percentile(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
