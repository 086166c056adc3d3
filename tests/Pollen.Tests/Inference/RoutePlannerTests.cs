using Pollen.Inference.Client;
using Pollen.Inference.Routing;

namespace Pollen.Tests.Inference;

public class RoutePlannerTests
{
    private static RoutePlan Plan(IReadOnlyList<ServerSpan> servers, int start = 0, int end = 8, Func<ServerSpan, bool>? usable = null, Func<ServerSpan, TimeSpan?>? latency = null) =>
        RoutePlanner.Plan(servers, start, end, usable ?? (_ => true), latency ?? (_ => TimeSpan.FromMilliseconds(10)));

    [Fact]
    public void OneServerForEverythingIsOneHop()
    {
        var all = new ServerSpan("a:1", 0, 8) { Throughput = 100 };
        var plan = Plan([all]);
        Assert.Equal([new RouteHop(all, 0, 8)], plan.Hops!);
        Assert.Equal(0.01 + 8 / 100.0, plan.EstimatedSeconds, 9);
    }

    [Fact]
    public void FastServersWinOverFewerHopsWhenComputeDominates()
    {
        var slow = new ServerSpan("slow:1", 0, 8) { Throughput = 10 };
        var a = new ServerSpan("a:1", 0, 4) { Throughput = 1000 };
        var b = new ServerSpan("b:1", 4, 8) { Throughput = 1000 };
        Assert.Equal([a, b], Plan([slow, a, b]).Hops!.Select(h => h.Server));
    }

    [Fact]
    public void FewerHopsWinWhenLatencyDominates()
    {
        var whole = new ServerSpan("whole:1", 0, 8) { Throughput = 1000 };
        var a = new ServerSpan("a:1", 0, 4) { Throughput = 2000 };
        var b = new ServerSpan("b:1", 4, 8) { Throughput = 2000 };
        Assert.Equal([whole], Plan([a, b, whole], latency: _ => TimeSpan.FromMilliseconds(50)).Hops!.Select(h => h.Server));
    }

    [Fact]
    public void ANearServerBeatsAFarOneForTheSameSpan()
    {
        var far = new ServerSpan("far:1", 0, 8) { Throughput = 1000 };
        var near = new ServerSpan("near:1", 0, 8) { Throughput = 1000 };
        var plan = Plan([far, near], latency: s => s == far ? TimeSpan.FromMilliseconds(80) : TimeSpan.FromMilliseconds(5));
        Assert.Equal(near, Assert.Single(plan.Hops!).Server);
    }

    [Fact]
    public void OverlappingSpansAreCutWhereTheRouteSwitchesServers()
    {
        var a = new ServerSpan("a:1", 0, 6) { Throughput = 1000 };
        var b = new ServerSpan("b:1", 3, 8) { Throughput = 1000 };
        var hops = Plan([a, b]).Hops!;
        Assert.Equal(2, hops.Count);
        Assert.Equal((0, hops[0].End), (hops[0].Start, hops[0].End));
        Assert.Equal(hops[0].End, hops[1].Start);
        Assert.Equal(8, hops[1].End);
        Assert.Equal(a, hops[0].Server);
        Assert.Equal(b, hops[1].Server);
    }

    [Fact]
    public void EqualEstimatesGoToTheServerListedFirst()
    {
        var first = new ServerSpan("first:1", 0, 8);
        var second = new ServerSpan("second:1", 0, 8);
        Assert.Equal(first, Assert.Single(Plan([first, second]).Hops!).Server);
        Assert.Equal(second, Assert.Single(Plan([second, first]).Hops!).Server);
    }

    [Fact]
    public void BannedServersAreSkippedAndMissingBlocksNamed()
    {
        var a = new ServerSpan("a:1", 0, 3);
        var b = new ServerSpan("b:1", 3, 5);
        var c = new ServerSpan("c:1", 6, 8);
        var plan = Plan([a, b, c], usable: s => s != b);
        Assert.Null(plan.Hops);
        Assert.Equal([(3, 6)], plan.Missing);
        Assert.Equal("3..5", plan.DescribeMissing());
        Assert.Equal("7", Plan([new ServerSpan("x:1", 0, 7)]).DescribeMissing());
    }

    [Fact]
    public void ASubRangeUsesOnlyItsBlocks()
    {
        var a = new ServerSpan("a:1", 0, 8);
        Assert.Equal([new RouteHop(a, 2, 5)], Plan([a], 2, 5).Hops!);
    }
}

public class SpanChooserTests
{
    [Fact]
    public void AnEmptySwarmGetsTheFirstBlocks() => Assert.Equal((0, 3), SpanChooser.LeastServed([], 8, 3));

    [Fact]
    public void JoiningServersFillTheModelIn()
    {
        var served = new List<(int, int)>();
        for (var i = 0; i < 4; i++)
        {
            served.Add(SpanChooser.LeastServed(served, 8, 2));
        }
        Assert.Equal([(0, 2), (2, 4), (4, 6), (6, 8)], served);
        // a fifth server duplicates the least-served window, here a tie everywhere → the first
        Assert.Equal((0, 2), SpanChooser.LeastServed(served, 8, 2));
    }

    [Fact]
    public void TheGapIsChosenEvenWhenItIsInTheMiddle()
    {
        Assert.Equal((3, 5), SpanChooser.LeastServed([(0, 3), (5, 8), (0, 8)], 8, 2));
        Assert.Equal((2, 5), SpanChooser.LeastServed([(0, 3), (5, 8), (0, 8)], 8, 3)); // both gap blocks; ties go to the lower start
    }

    [Fact]
    public void AnImpossibleCountIsRefusedWithTheLimit()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SpanChooser.LeastServed([], 8, 9));
        Assert.Contains("1..8", e.Message, StringComparison.Ordinal);
    }
}
