using Pollen.Swarm.Identity;

namespace Pollen.Tests.Swarm;

public sealed class IdentityTests : IDisposable
{
    private readonly string _home = Path.Combine(Path.GetTempPath(), "pollen-id-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_home))
        {
            Directory.Delete(_home, recursive: true);
        }
    }

    [Fact]
    public void KeyIsCreatedOnFirstStartOwnerOnlyAndReloadedAfterwards()
    {
        PeerId first;
        using (var identity = NodeIdentity.LoadOrCreate(_home))
        {
            first = identity.PeerId;
        }
        var path = Path.Combine(_home, NodeIdentity.KeyFileName);
        Assert.Equal(32, new FileInfo(path).Length);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
        Assert.Empty(Directory.GetFiles(_home, "*.pollen-tmp"));
        using var again = NodeIdentity.LoadOrCreate(_home);
        Assert.Equal(first, again.PeerId);
        Assert.Equal(PeerId.FromPublicKey(again.PublicKey), again.PeerId);
    }

    [Fact]
    public void CorruptKeyFileIsRefusedWithAHint()
    {
        Directory.CreateDirectory(_home);
        File.WriteAllBytes(Path.Combine(_home, NodeIdentity.KeyFileName), [1, 2, 3]);
        var e = Assert.Throws<InvalidDataException>(() => NodeIdentity.LoadOrCreate(_home));
        Assert.Contains("move it away", e.Message);
    }

    [Fact]
    public void SignaturesVerifyOnlyForTheSignedBytesAndKey()
    {
        using var a = NodeIdentity.CreateEphemeral();
        using var b = NodeIdentity.CreateEphemeral();
        var data = "hello swarm"u8.ToArray();
        var signature = a.Sign(data);
        Assert.Equal(64, signature.Length);
        Assert.True(NodeIdentity.Verify(a.PublicKey, data, signature));
        Assert.False(NodeIdentity.Verify(b.PublicKey, data, signature));
        data[0] ^= 1;
        Assert.False(NodeIdentity.Verify(a.PublicKey, data, signature));
        Assert.False(NodeIdentity.Verify([1, 2, 3], data, signature));
        Assert.False(NodeIdentity.Verify(a.PublicKey, data, signature.AsSpan(0, 10)));
    }

    [Fact]
    public void PeerIdTextRoundTripsAndRejectsNonIds()
    {
        using var a = NodeIdentity.CreateEphemeral();
        var text = a.PeerId.ToString();
        Assert.Equal(PeerId.TextLength, text.Length);
        Assert.Matches("^[a-z2-7]{52}$", text);
        Assert.Equal(a.PeerId, PeerId.Parse(text));
        Assert.Equal(a.PeerId, PeerId.Parse(text.ToUpperInvariant()));
        Assert.Equal(text[..10], a.PeerId.ShortString);
        Assert.False(PeerId.TryParse(text[..51], out _));
        Assert.False(PeerId.TryParse(text[..51] + "1", out _));
        // the last character carries 4 padding bits that must be zero, so each id has one spelling
        var last = text[^1];
        var sibling = "abcdefghijklmnopqrstuvwxyz234567"["abcdefghijklmnopqrstuvwxyz234567".IndexOf(last) ^ 1];
        Assert.False(PeerId.TryParse(text[..51] + sibling, out _));
    }

    [Fact]
    public void XorDistanceAndPrefixesBehaveAsKademliaNeeds()
    {
        var a = DhtId.Random();
        var b = DhtId.Random();
        Assert.Equal(a.Xor(b), b.Xor(a));
        Assert.Equal(256, a.Xor(a).LeadingZeroCount());
        Assert.Equal(256, a.CommonPrefixLength(a));
        Assert.Equal(a, DhtId.FromBytes(a.ToByteArray()));
        for (var prefix = 0; prefix < 256; prefix += 17)
        {
            var c = a.RandomWithCommonPrefix(prefix);
            Assert.Equal(prefix, a.CommonPrefixLength(c));
        }
        var bytes = new byte[32];
        bytes[31] = 1;
        var one = DhtId.FromBytes(bytes);
        bytes[31] = 0;
        bytes[0] = 0x80;
        var top = DhtId.FromBytes(bytes);
        Assert.True(one < top);
        Assert.Equal(255, one.LeadingZeroCount());
        Assert.Equal(0, top.LeadingZeroCount());
    }
}
