using Pollen.Inference.Routing;

namespace Pollen.Tests.Inference;

/// <summary>A server covering a gap announces more than its own span; newcomers choose blocks by its own span.</summary>
public class OwnSpanTests
{
    private static ServerAnnouncement Announce(int start, int end, int[]? own) => new()
    {
        PeerId = "p",
        Address = "127.0.0.1:1",
        ModelId = "m",
        ConfigFingerprint = "0123456789abcdef",
        StartBlock = start,
        EndBlock = end,
        OwnBlocks = own,
    };

    [Fact]
    public void TheOwnSpanIsUsedOnlyWhenItLiesWithinTheAnnouncedOne()
    {
        Assert.Equal((0, 2), Announce(0, 4, [0, 2]).OwnSpan);
        Assert.Equal((0, 4), Announce(0, 4, null).OwnSpan);
        Assert.Equal((0, 4), Announce(0, 4, [3, 6]).OwnSpan); // outside what it announces: ignored
        Assert.Equal((0, 4), Announce(0, 4, [2, 2]).OwnSpan); // empty
        Assert.Equal((0, 4), Announce(0, 4, [1, 2, 3]).OwnSpan); // not a pair
    }

    [Fact]
    public void ANewcomerTakesTheBlocksWhoseOwnerOnlyCoversThem()
    {
        // the founder chose 0..1 and covers 2..3 while nobody serves them: a newcomer asking for 2 blocks takes 2..3
        var founder = Announce(0, 4, [0, 2]);
        Assert.Equal((2, 4), SpanChooser.LeastServed([founder.OwnSpan], 4, 2));
        // counted by what it announces, every window would tie and the newcomer would double 0..1
        Assert.Equal((0, 2), SpanChooser.LeastServed([(founder.StartBlock, founder.EndBlock)], 4, 2));
    }
}
