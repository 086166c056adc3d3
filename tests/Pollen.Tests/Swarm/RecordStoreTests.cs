using Microsoft.Extensions.Time.Testing;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Records;

namespace Pollen.Tests.Swarm;

public sealed class RecordStoreTests : IDisposable
{
    private static readonly DhtId Key = DhtId.ForKey("k");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly NodeIdentity _peer = NodeIdentity.CreateEphemeral();

    public void Dispose() => _peer.Dispose();

    private RecordStore NewStore() => new(_time, new RecordLimits { MaxValueBytes = 100, MaxSubkeysPerKey = 3, MaxEntries = 4 });

    [Fact]
    public void ExpiredEntriesDisappearAsTheClockPasses()
    {
        var store = NewStore();
        var now = _time.GetUtcNow();
        Assert.True(store.Store(Key, new RecordEntry("short", [1], now.AddMinutes(1))).IsAccepted);
        Assert.True(store.Store(Key, new RecordEntry("long", [2], now.AddMinutes(10))).IsAccepted);
        Assert.Equal(2, store.Get(Key).Count);

        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal("long", Assert.Single(store.Get(Key)).Subkey);
        _time.Advance(TimeSpan.FromMinutes(9));
        Assert.Empty(store.Get(Key));
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public void LaterExpirationWinsAndRefreshingExtendsLife()
    {
        var store = NewStore();
        var now = _time.GetUtcNow();
        Assert.True(store.Store(Key, new RecordEntry("s", [1], now.AddMinutes(5))).IsAccepted);
        Assert.Equal(RecordError.Outdated, store.Store(Key, new RecordEntry("s", [2], now.AddMinutes(4))).Error);
        Assert.True(store.Store(Key, new RecordEntry("s", [1], now.AddMinutes(5))).IsAccepted); // republish is idempotent
        Assert.True(store.Store(Key, new RecordEntry("s", [3], now.AddMinutes(8))).IsAccepted);
        _time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal(new byte[] { 3 }, Assert.Single(store.Get(Key)).Value);
    }

    [Fact]
    public void ValidationErrorsAreTypedAndSayWhatIsWrong()
    {
        var store = NewStore();
        var now = _time.GetUtcNow();
        var big = store.Store(Key, new RecordEntry("s", new byte[101], now.AddMinutes(1)));
        Assert.Equal(RecordError.ValueTooLarge, big.Error);
        Assert.Contains("101 bytes", big.Message);
        Assert.Equal(RecordError.ExpirationTooFar, store.Store(Key, new RecordEntry("s", [1], now.AddHours(24).AddSeconds(1))).Error);
        Assert.True(store.Store(Key, new RecordEntry("s", [1], now.AddHours(24))).IsAccepted);
        Assert.Equal(RecordError.Expired, store.Store(Key, new RecordEntry("t", [1], now)).Error);
        Assert.Equal(RecordError.InvalidSubkey, store.Store(Key, new RecordEntry(new string('x', 257), [1], now.AddMinutes(1))).Error);
        var thrown = Assert.Throws<RecordValidationException>(() => store.Store(Key, new RecordEntry("s", new byte[101], now.AddMinutes(1))).ThrowIfRefused());
        Assert.Equal(RecordError.ValueTooLarge, thrown.Error);
    }

    [Fact]
    public void OwnedSubkeysNeedTheOwnersSignatureOverKeySubkeyValueAndExpiration()
    {
        var store = NewStore();
        var expiration = _time.GetUtcNow().AddMinutes(1);
        var subkey = RecordOwnership.SubkeyFor(_peer.PeerId, "blocks");
        Assert.True(RecordOwnership.TryGetOwner(subkey, out var owner));
        Assert.Equal(_peer.PeerId, owner);
        Assert.False(RecordOwnership.TryGetOwner(_peer.PeerId + "x", out _));

        var signed = RecordEntry.CreateSigned(_peer, Key, subkey, [1, 2], expiration);
        Assert.Equal(RecordError.MissingSignature, store.Store(Key, signed with { Signature = null }).Error);
        Assert.Equal(RecordError.BadSignature, store.Store(DhtId.ForKey("other key"), signed).Error);
        Assert.Equal(RecordError.BadSignature, store.Store(Key, signed with { Subkey = RecordOwnership.SubkeyFor(_peer.PeerId, "other") }).Error);
        using var other = NodeIdentity.CreateEphemeral();
        Assert.Equal(RecordError.WrongSigner, store.Store(Key, RecordEntry.CreateSigned(other, Key, subkey, [1, 2], expiration)).Error);
        Assert.True(store.Store(Key, signed).IsAccepted);
    }

    [Fact]
    public void CapsOnSubkeysAndEntriesHold()
    {
        var store = NewStore();
        var expiration = _time.GetUtcNow().AddMinutes(1);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(store.Store(Key, new RecordEntry($"s{i}", [1], expiration)).IsAccepted);
        }
        Assert.Equal(RecordError.StoreFull, store.Store(Key, new RecordEntry("s3", [1], expiration)).Error);
        Assert.True(store.Store(DhtId.ForKey("k2"), new RecordEntry("a", [1], expiration)).IsAccepted);
        Assert.Equal(RecordError.StoreFull, store.Store(DhtId.ForKey("k3"), new RecordEntry("a", [1], expiration)).Error);
        _time.Advance(TimeSpan.FromMinutes(2));
        Assert.True(store.Store(DhtId.ForKey("k3"), new RecordEntry("a", [1], _time.GetUtcNow().AddMinutes(1))).IsAccepted);
    }
}
