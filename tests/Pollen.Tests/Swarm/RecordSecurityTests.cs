using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Protos;
using Pollen.Swarm.Records;
using RecordEntry = Pollen.Swarm.Records.RecordEntry;
using WireEntry = Pollen.Swarm.Protos.RecordEntry;

namespace Pollen.Tests.Swarm;

/// <summary>Records from other peers are untrusted: hostile writes are refused with a clear status and the node keeps serving.</summary>
public sealed class RecordSecurityTests : IAsyncLifetime
{
    private const string Key = "announcements";
    private static readonly DhtId KeyId = DhtId.ForKey(Key);
    private TestSwarm _swarm = null!;
    private GrpcChannel _channel = null!;
    private Pollen.Swarm.Protos.Dht.DhtClient _client = null!;

    public async ValueTask InitializeAsync()
    {
        _swarm = await TestSwarm.StartAsync(5, seed: 3);
        _channel = GrpcChannel.ForAddress("http://" + _swarm[0].Address, new GrpcChannelOptions { MaxSendMessageSize = 16 << 20 });
        _client = new Pollen.Swarm.Protos.Dht.DhtClient(_channel);
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _swarm.DisposeAsync();
    }

    private static DateTimeOffset Soon => DateTimeOffset.UtcNow + TimeSpan.FromMinutes(30);

    [Fact]
    public async Task PeerBCannotOverwriteOrForgePeerAsRecord()
    {
        var ct = TestContext.Current.CancellationToken;
        var a = _swarm[1].Dht;
        var b = _swarm[2].Dht;
        var subkeyOfA = RecordOwnership.SubkeyFor(a.PeerId);
        var original = RecordEntry.CreateSigned(a.Identity, KeyId, subkeyOfA, "from A"u8.ToArray(), Soon);
        await a.StoreAsync(KeyId, original, ct);

        // B signs A's subkey with its own key
        var bSigned = RecordEntry.CreateSigned(b.Identity, KeyId, subkeyOfA, "from B"u8.ToArray(), Soon + TimeSpan.FromMinutes(1));
        Assert.Equal(RecordError.WrongSigner, (await StoreAsync(bSigned)).Error);
        var thrown = await Assert.ThrowsAsync<RecordValidationException>(() => b.StoreAsync(KeyId, bSigned, ct));
        Assert.Equal(RecordError.WrongSigner, thrown.Error);

        // B claims A's public key but cannot produce A's signature
        var forged = bSigned with { SignerPublicKey = a.Identity.PublicKey };
        Assert.Equal(RecordError.BadSignature, (await StoreAsync(forged)).Error);

        // B replays A's signed entry with a later expiration, or a different value, or no signature
        Assert.Equal(RecordError.BadSignature, (await StoreAsync(original with { Expiration = original.Expiration + TimeSpan.FromHours(1) })).Error);
        Assert.Equal(RecordError.BadSignature, (await StoreAsync(original with { Value = [] })).Error);
        Assert.Equal(RecordError.MissingSignature, (await StoreAsync(new RecordEntry(subkeyOfA, [], Soon + TimeSpan.FromHours(2)))).Error);

        // a replay of A's own older entry cannot roll back a newer one
        var newer = RecordEntry.CreateSigned(a.Identity, KeyId, subkeyOfA, "from A, v2"u8.ToArray(), Soon + TimeSpan.FromMinutes(5));
        await a.StoreAsync(KeyId, newer, ct);
        Assert.Equal(RecordError.Outdated, (await StoreAsync(original)).Error);

        foreach (var reader in _swarm.Alive)
        {
            var found = await reader.Dht.GetAsync(Key, ct);
            var entry = Assert.Single(found.Entries);
            Assert.Equal("from A, v2", Encoding.UTF8.GetString(entry.Value));
        }
    }

    [Fact]
    public async Task OversizedValuesAndFarFutureExpirationsAreRefusedWithTheLimitNamed()
    {
        var limits = new RecordLimits();
        var big = await StoreAsync(new RecordEntry("open", new byte[limits.MaxValueBytes + 1], Soon));
        Assert.Equal(RecordError.ValueTooLarge, big.Error);
        Assert.Contains(limits.MaxValueBytes.ToString(System.Globalization.CultureInfo.InvariantCulture), big.Message);

        var far = await StoreAsync(new RecordEntry("open", [1], DateTimeOffset.UtcNow + TimeSpan.FromHours(25)));
        Assert.Equal(RecordError.ExpirationTooFar, far.Error);
        Assert.Contains("24 h", far.Message);

        var expired = await StoreAsync(new RecordEntry("open", [1], DateTimeOffset.UtcNow - TimeSpan.FromSeconds(1)));
        Assert.Equal(RecordError.Expired, expired.Error);

        var empty = await StoreAsync(new RecordEntry("", [1], Soon));
        Assert.Equal(RecordError.InvalidSubkey, empty.Error);

        // at the cap is fine
        Assert.Equal(RecordError.None, (await StoreAsync(new RecordEntry("open", new byte[limits.MaxValueBytes], Soon))).Error);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task MalformedMessagesAreRefusedAndTheNodeKeepsServing()
    {
        var ct = TestContext.Current.CancellationToken;
        var options = new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);

        var shortKey = await Assert.ThrowsAsync<RpcException>(() => _client.StoreAsync(new StoreRequest { Key = ByteString.CopyFrom(1, 2, 3) }, options).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, shortKey.StatusCode);
        Assert.Contains("32 bytes", shortKey.Status.Detail);

        var badTarget = await Assert.ThrowsAsync<RpcException>(() => _client.FindNodeAsync(new FindNodeRequest(), options).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badTarget.StatusCode);

        // a sender whose id is not the hash of its key is impersonating someone
        var liar = new PeerInfo { PeerId = ByteString.CopyFrom(new byte[32]), PublicKey = ByteString.CopyFrom(new byte[32]), Address = "127.0.0.1:1" };
        var impersonation = await Assert.ThrowsAsync<RpcException>(() => _client.PingAsync(new PingRequest { Sender = liar }, options).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, impersonation.StatusCode);
        Assert.DoesNotContain(_swarm[0].Dht.Routing.All(), c => c.Address == "127.0.0.1:1");

        var tooMany = new StoreRequest { Key = ByteString.CopyFrom(KeyId.ToByteArray()) };
        tooMany.Entries.AddRange(Enumerable.Range(0, DhtNode.MaxEntriesPerStore + 1).Select(i => new WireEntry { Subkey = $"s{i}", ExpirationUnixMs = Soon.ToUnixTimeMilliseconds() }));
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => _client.StoreAsync(tooMany, options).ResponseAsync)).StatusCode);

        var expirationOutOfRange = new StoreRequest { Key = ByteString.CopyFrom(KeyId.ToByteArray()) };
        expirationOutOfRange.Entries.Add(new WireEntry { Subkey = "x", ExpirationUnixMs = long.MaxValue });
        Assert.Equal(StoreError.Expired, (await _client.StoreAsync(expirationOutOfRange, options)).Results.Single().Error);

        // bytes that are not a protobuf message at all
        var raw = new Method<byte[], byte[]>(MethodType.Unary, "pollen.dht.Dht", "Store", Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        var garbage = await Assert.ThrowsAsync<RpcException>(() => _channel.CreateCallInvoker().AsyncUnaryCall(raw, null, options, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x12]).ResponseAsync);
        Assert.NotEqual(StatusCode.OK, garbage.StatusCode);
        Assert.DoesNotContain(" at ", garbage.Status.Detail); // no stack trace leaks

        // a message over the 4 MiB cap
        var huge = new StoreRequest { Key = ByteString.CopyFrom(KeyId.ToByteArray()) };
        huge.Entries.Add(new WireEntry { Subkey = "huge", Value = ByteString.CopyFrom(new byte[5 << 20]), ExpirationUnixMs = Soon.ToUnixTimeMilliseconds() });
        Assert.Equal(StatusCode.ResourceExhausted, (await Assert.ThrowsAsync<RpcException>(() => _client.StoreAsync(huge, options).ResponseAsync)).StatusCode);

        await AssertStillServingAsync();
    }

    private async Task<StoreOutcome> StoreAsync(RecordEntry entry)
    {
        var request = new StoreRequest { Key = ByteString.CopyFrom(KeyId.ToByteArray()) };
        request.Entries.Add(new WireEntry
        {
            Subkey = entry.Subkey,
            Value = ByteString.CopyFrom(entry.Value),
            ExpirationUnixMs = entry.ExpirationUnixMs,
            Signature = entry.Signature is null ? ByteString.Empty : ByteString.CopyFrom(entry.Signature),
            SignerPublicKey = entry.SignerPublicKey is null ? ByteString.Empty : ByteString.CopyFrom(entry.SignerPublicKey),
        });
        var response = await _client.StoreAsync(request, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)));
        var result = Assert.Single(response.Results);
        return new StoreOutcome((RecordError)(int)result.Error, result.Message);
    }

    private async Task AssertStillServingAsync()
    {
        var ct = TestContext.Current.CancellationToken;
        var pong = await _client.PingAsync(new PingRequest(), new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct));
        Assert.Equal(_swarm[0].PeerId.ToByteArray(), pong.Responder.PeerId.ToByteArray());
        await _swarm[0].Dht.PutAsync("after-abuse", "s", [42], Soon, ct);
        Assert.Equal(new byte[] { 42 }, Assert.Single((await _swarm[4].Dht.GetAsync("after-abuse", ct)).Entries).Value);
    }
}
