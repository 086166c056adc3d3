using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;
using Pollen.Inference.Protos;
using Pollen.Inference.Server;
using Pollen.Model.Generation;
using Pollen.Tests.Model;

namespace Pollen.Tests.Inference;

/// <summary>The push lane: pushed steps as bare frames on a TCP port of their own.</summary>
[Collection(nameof(InferenceSerial))]
public class PushLaneTests
{
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 24, StopAtEos = false };

    private static readonly int[] Prompt = [3, 17, 5, 22, 9];

    private static readonly Pollen.Model.Config.ModelConfig Config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, byte[]> Malformed => new()
    {
        { "wrong magic", "POLLENP2"u8.ToArray() },
        { "a frame longer than a message may be", [.. PushLane.Magic, .. Length(int.MaxValue)] },
        { "an empty frame", [.. PushLane.Magic, .. Length(0)] },
        { "a negative length", [.. PushLane.Magic, .. Length(-5)] },
        { "a frame that is not protobuf", [.. PushLane.Magic, .. Length(4), 0xFF, 0xFF, 0xFF, 0xFF] },
        { "a batch of no steps", [.. PushLane.Magic, .. Length(2), 0x10, 0x01] }, // only an unknown field
        { "a connection cut inside a frame", [.. PushLane.Magic, .. Length(100), 1, 2, 3] },
        { "a connection cut inside a frame claiming 60 MiB", [.. PushLane.Magic, .. Length(60 << 20), .. new byte[(1 << 20) + 10]] },
        { "a request for the answers of 65 sessions", PushLane.Frame(ListenTo(65), first: true) },
    };

    private static PushBatch ListenTo(int sessions)
    {
        var batch = new PushBatch();
        batch.Listen.Add(Enumerable.Range(1, sessions).Select(i => new ListenRequest { SessionId = i.ToString(System.Globalization.CultureInfo.InvariantCulture), AnswerToken = ByteString.CopyFrom(new byte[16]) }));
        return batch;
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task AConnectionSendingGarbageIsClosedAndTheServerGoesOn(string what, byte[] bytes)
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 2), (2, 4)]);
        var server = swarm.Hosts[1]!.Server;
        using (var socket = await ConnectAsync(server.PushPort))
        {
            await socket.SendAsync(bytes, Ct);
            if (what.Contains("cut", StringComparison.Ordinal))
            {
                socket.Shutdown(SocketShutdown.Send);
            }
            // the server closes its side (while this one stays open): the read ends without data
            Assert.Equal(0, await socket.ReceiveAsync(new byte[1], Ct));
        }
        Assert.Equal(0, server.PushesReceived);
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, Greedy, Ct);
        using var model = swarm.Client();
        var remote = await TextGenerator.GenerateToEndAsync(model, null, Prompt, Greedy, Ct);
        Assert.True(local.Ids.SequenceEqual(remote.Ids), $"after {what}, generation differs from local");
        Assert.Equal(Greedy.MaxNewTokens - 1, swarm.Hosts[0]!.Server.LaneMessages);
        Assert.Equal(Greedy.MaxNewTokens - 1, server.PushesReceived);
    }

    [Fact]
    public async Task AWellFormedPushForNoSessionIsDroppedAndTheConnectionStaysOpen()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 4)]);
        var server = swarm.Hosts[0]!.Server;
        using var socket = await ConnectAsync(server.PushPort);
        var batch = new PushBatch();
        batch.Steps.Add(new PushRequest { SessionId = "12345", PushToken = ByteString.CopyFrom(new byte[16]), Step = new InferenceStep() });
        await socket.SendAsync(PushLane.Frame(batch, first: true), Ct);
        await socket.SendAsync(PushLane.Frame(batch, first: false), Ct);
        // the connection is still open after two pushes: a third frame arrives and is dropped too
        await socket.SendAsync(PushLane.Frame(batch, first: false), Ct);
        socket.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, await socket.ReceiveAsync(new byte[1], Ct)); // closed only once this side ended
        Assert.Equal(3, server.PushesRefused);
        Assert.Equal(0, server.PushesReceived);
    }

    [Fact]
    public async Task ConnectionsBeyondTheLimitAreClosedUnlessAnIdleOneMakesWay()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 4)]);
        var server = swarm.Hosts[0]!.Server;
        var open = new List<Socket>();
        try
        {
            for (var i = 0; i < PushLane.MaxConnections; i++)
            {
                open.Add(await ConnectAsync(server.PushPort));
            }
            using var extra = await ConnectAsync(server.PushPort, accepted: false);
            Assert.Equal(0, await extra.ReceiveAsync(new byte[1], Ct)); // closed without the accepted byte
            Assert.Equal(PushLane.MaxConnections, server.PushLaneConnections);
        }
        finally
        {
            open.ForEach(s => s.Dispose());
        }

        // a listener whose connections count as idle at once: the longest idle makes way for the newcomer
        using var lane = new PushLaneListener(System.Net.IPAddress.Loopback, 0, (_, _) => { }, 1 << 20, 1,
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, evictIdle: TimeSpan.Zero);
        var full = new List<Socket>();
        try
        {
            for (var i = 0; i < PushLane.MaxConnections; i++)
            {
                full.Add(await ConnectAsync(lane.Port));
            }
            using var newcomer = await ConnectAsync(lane.Port); // accepted
            var closed = await Task.WhenAny(full.Select(s => s.ReceiveAsync(new byte[1], Ct).AsTask()));
            Assert.Equal(0, await closed); // one of the others was closed for it
            Assert.Equal(PushLane.MaxConnections, lane.Connections);
        }
        finally
        {
            full.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task OnlyTheClientsAnswerTokenHasASessionAnswerOnALane()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 4)]);
        var server = swarm.Hosts[0]!.Server;
        using var expired = new CancellationTokenSource();
        var session = server.OpenSession(new OpenSession { Blocks = new BlockRange { StartBlock = 0, EndBlock = 4 }, MaxLength = 16 }, expired);
        var lane = new NoLane();
        var id = session.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        // the push token is what the previous server of a route knows: it cannot take the answers over
        server.ListenOnLane(new ListenRequest { SessionId = id, AnswerToken = ByteString.CopyFrom(session.PushToken) }, lane);
        server.ListenOnLane(new ListenRequest { SessionId = id, AnswerToken = ByteString.Empty }, lane);
        server.ListenOnLane(new ListenRequest { SessionId = "x", AnswerToken = ByteString.CopyFrom(session.AnswerToken) }, lane);
        Assert.Null(session.AnswerLane);
        server.ListenOnLane(new ListenRequest { SessionId = id, AnswerToken = ByteString.CopyFrom(session.AnswerToken) }, lane);
        Assert.Same(lane, session.AnswerLane);
        server.CloseSession(session);
    }

    private sealed class NoLane : IAnswerLane
    {
        public bool TrySend(LaneAnswer answer) => false;
    }

    [Fact]
    public async Task AConnectionIsNotReadWhileMoreOfItsStepsRunThanAllowed()
    {
        var finish = Enumerable.Range(0, 3).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var started = 0;
        using var startedOne = new SemaphoreSlim(0);
        // each message starts one step that runs until the test finishes it; at most 1 may run (2 to stop reading)
        using var lane = new PushLaneListener(System.Net.IPAddress.Loopback, 0, (_, running) =>
        {
            running.Add(finish[started++].Task);
            startedOne.Release();
        }, 1 << 20, 1, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        using var socket = await ConnectAsync(lane.Port);
        var batch = new PushBatch();
        batch.Steps.Add(new PushRequest { SessionId = "1", PushToken = ByteString.CopyFrom(new byte[16]), Step = new InferenceStep() });
        byte[] frames = [.. PushLane.Frame(batch, first: true), .. PushLane.Frame(batch, first: false), .. PushLane.Frame(batch, first: false)];
        await socket.SendAsync(frames, Ct);
        Assert.True(await startedOne.WaitAsync(TimeSpan.FromSeconds(30), Ct));
        Assert.True(await startedOne.WaitAsync(TimeSpan.FromSeconds(30), Ct));
        // the third frame has arrived; a connection still read would have it started by the time the tensor
        // thread has come round a few times
        for (var i = 0; i < 3; i++)
        {
            await Pollen.Model.Runtime.TensorThread.InvokeAsync(() => true);
        }
        Assert.Equal(2, Volatile.Read(ref started));
        finish[0].SetResult();
        Assert.True(await startedOne.WaitAsync(TimeSpan.FromSeconds(30), Ct));
        Assert.Equal(3, Volatile.Read(ref started));
        Array.ForEach(finish, f => f.TrySetResult());
    }

    [Fact]
    public async Task PushesGoOverGrpcOnceALaneCannotBeReached()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 2), (2, 4)]);
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, Greedy, Ct);
        using var model = swarm.Client();
        var ids = new List<int>();
        long onLane = 0, answered = 0;
        await foreach (var token in TextGenerator.GenerateAsync(model, null, Prompt, Greedy, Ct))
        {
            ids.Add(token.Id);
            if (ids.Count == 8)
            {
                onLane = swarm.Hosts[0]!.Server.LaneMessages;
                answered = swarm.Hosts[1]!.Server.LaneAnswers;
                swarm.Hosts[1]!.StopPushLane(); // as if a firewall closed the port: the gRPC port still works
            }
        }
        Assert.Equal(local.Ids, ids);
        var first = swarm.Hosts[0]!.Server;
        Assert.True(onLane >= 6, $"only {onLane} messages went on the lane before it stopped");
        Assert.Equal(onLane, first.LaneMessages); // none since
        Assert.True(first.PushMessages > onLane, "the pushes after the lane stopped did not go over gRPC");
        // the client's answers came on the last server's lane until it stopped, then on the session's stream
        Assert.True(answered >= 6, $"only {answered} answers came on the lane before it stopped");
        Assert.Equal(answered, swarm.Hosts[1]!.Server.LaneAnswers);
    }

    private static byte[] Length(int length)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, length);
        return bytes;
    }

    /// <summary>A raw connection to a lane, having read its accepted byte (unless <paramref name="accepted"/> is false).</summary>
    private static async Task<Socket> ConnectAsync(int port, bool accepted = true)
    {
        Assert.True(port > 0, "the server has no push lane");
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", port, Ct);
        if (accepted)
        {
            var first = new byte[1];
            Assert.Equal(1, await socket.ReceiveAsync(first, Ct));
            Assert.Equal(PushLane.Accepted, first[0]);
        }
        return socket;
    }
}
