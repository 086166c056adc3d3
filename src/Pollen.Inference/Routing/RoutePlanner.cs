using Pollen.Inference.Client;

namespace Pollen.Inference.Routing;

/// <summary>One hop of a route: blocks <see cref="Start"/>..<see cref="End"/>-1 on <see cref="Server"/>.</summary>
public sealed record RouteHop(ServerSpan Server, int Start, int End);

/// <summary>A route, or the blocks no usable server hosts.</summary>
public sealed record RoutePlan(IReadOnlyList<RouteHop>? Hops, IReadOnlyList<(int Start, int End)> Missing, double EstimatedSeconds)
{
    /// <summary>"2..3, 6..6" style list of the missing blocks (inclusive ranges).</summary>
    public string DescribeMissing() => string.Join(", ", Missing.Select(m => m.End - m.Start == 1 ? $"{m.Start}" : $"{m.Start}..{m.End - 1}"));
}

/// <summary>
/// Chooses the route through a model's blocks with the least estimated time for one step: each hop costs
/// the round trip to its server plus, per block, the server's time for one block (1 / throughput), as
/// Petals estimates it. Shortest path over block boundaries 0..L, where a server hosting a..b offers an
/// edge from every boundary i in [a, b) to every boundary j in (i, b]; L ≤ a few hundred and servers ≤ a
/// few hundred keep the O(L² · S) search in milliseconds.
/// </summary>
public static class RoutePlanner
{
    /// <summary>Round trip assumed for a server not measured yet.</summary>
    public static readonly TimeSpan DefaultLatency = TimeSpan.FromMilliseconds(20);

    /// <summary>Block-steps per second assumed for a server that announced none.</summary>
    public const double DefaultThroughput = 100;

    /// <summary>
    /// The fastest route through blocks <paramref name="start"/>..<paramref name="end"/>-1 over the servers
    /// <paramref name="usable"/> accepts; ties go to fewer hops, then to the server listed first.
    /// </summary>
    /// <param name="servers">Candidate servers.</param>
    /// <param name="start">First block.</param>
    /// <param name="end">One past the last block.</param>
    /// <param name="usable">False for banned or refused servers.</param>
    /// <param name="latency">Measured round trip of a server, or null when unknown (then <see cref="DefaultLatency"/>).</param>
    public static RoutePlan Plan(IReadOnlyList<ServerSpan> servers, int start, int end, Func<ServerSpan, bool> usable, Func<ServerSpan, TimeSpan?> latency)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(end, start);
        var candidates = servers.Where(s => s.Start < end && s.End > start && usable(s)).ToList();
        var n = end - start;
        var cost = new double[n + 1];
        var hops = new int[n + 1];
        var from = new (int Boundary, ServerSpan? Server)[n + 1];
        Array.Fill(cost, double.PositiveInfinity);
        cost[0] = 0;
        var hopCost = candidates.Select(s => (latency(s) ?? DefaultLatency).TotalSeconds).ToArray();
        var blockCost = candidates.Select(s => 1.0 / (s.Throughput is > 0 and var t && double.IsFinite(t) ? t : DefaultThroughput)).ToArray();
        for (var i = 0; i < n; i++)
        {
            if (double.IsPositiveInfinity(cost[i]))
            {
                continue;
            }
            var block = start + i;
            for (var c = 0; c < candidates.Count; c++)
            {
                var s = candidates[c];
                if (s.Start > block || s.End <= block)
                {
                    continue;
                }
                var last = Math.Min(s.End, end) - start;
                for (var j = i + 1; j <= last; j++)
                {
                    var total = cost[i] + hopCost[c] + (j - i) * blockCost[c];
                    // strictly better, or equal time with fewer hops; otherwise the first found stays
                    if (total < cost[j] - 1e-12 || (Math.Abs(total - cost[j]) <= 1e-12 && hops[i] + 1 < hops[j]))
                    {
                        cost[j] = total;
                        hops[j] = hops[i] + 1;
                        from[j] = (i, s);
                    }
                }
            }
        }
        if (double.IsPositiveInfinity(cost[n]))
        {
            return new RoutePlan(null, Missing(candidates, start, end), double.PositiveInfinity);
        }
        var route = new List<RouteHop>();
        for (var j = n; j > 0; j = from[j].Boundary)
        {
            route.Add(new RouteHop(from[j].Server!, start + from[j].Boundary, start + j));
        }
        route.Reverse();
        return new RoutePlan(route, [], cost[n]);
    }

    private static List<(int Start, int End)> Missing(IReadOnlyList<ServerSpan> usable, int start, int end)
    {
        var missing = new List<(int, int)>();
        int? gap = null;
        for (var b = start; b <= end; b++)
        {
            var covered = b == end || usable.Any(s => s.Start <= b && s.End > b);
            if (!covered && gap is null)
            {
                gap = b;
            }
            else if (covered && gap is { } g)
            {
                missing.Add((g, b));
                gap = null;
            }
        }
        return missing;
    }
}
