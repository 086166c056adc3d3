using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Pollen.Inference.Client;
using Pollen.Inference.Protos;
using Pollen.Inference.Wire;
using Pollen.Model.Generation;
using Pollen.Model.Llama;
using Pollen.Tests.Model;
using static TorchSharp.torch;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Tests.Inference;

/// <summary>Hidden states passed server to server along a route (each server still answering its client).</summary>
[Collection(nameof(InferenceSerial))]
public class ServerPushTests
{
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 30, StopAtEos = false };

    private static readonly int[] Prompt = [3, 17, 5, 22, 9];

    private static readonly Pollen.Model.Config.ModelConfig Config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task StepsTravelServerToServerAndGenerationEqualsLocal(bool pushLanes)
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 1), (1, 2), (2, 3), (3, 4)], pushLanes: pushLanes);
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, Greedy, Ct);
        using (var model = swarm.Client())
        {
            var pushed = await TextGenerator.GenerateToEndAsync(model, null, Prompt, Greedy, Ct);
            Assert.Equal(local.Ids, pushed.Ids);
        }
        var servers = swarm.Hosts.Select(h => h!.Server).ToArray();
        // the prompt goes hop by hop (it opens the sessions); each later token is pushed along the route
        var steps = Greedy.MaxNewTokens - 1;
        Assert.All(servers[..3], s => Assert.Equal(steps, s.StepsPushed));
        Assert.All(servers[1..], s => Assert.Equal(steps, s.PushesReceived));
        Assert.All(servers[..3], s => Assert.Equal(steps, s.PushMessages)); // a lone session's steps are not batched
        Assert.All(servers[..3], s => Assert.Equal(pushLanes ? steps : 0, s.LaneMessages)); // else the Push call
        Assert.Equal(0, servers[3].StepsPushed);
        Assert.Equal(pushLanes ? steps : 0, servers[0].PushesReceived); // the client's steps go on the first server's lane too
        Assert.Equal(pushLanes ? steps : 0, servers[3].LaneAnswers); // and the last server's answers come back on its lane

        using (var model = swarm.Client(new SwarmModelOptions { PushBetweenServers = false }))
        {
            var carried = await TextGenerator.GenerateToEndAsync(model, null, Prompt, Greedy, Ct);
            Assert.Equal(local.Ids, carried.Ids);
        }
        Assert.Equal(steps, servers[0].StepsPushed); // nothing more was pushed
    }

    [Fact]
    public async Task AMiddleServerKilledMidChainIsReplacedAndTheLaterSessionReplayed()
    {
        // the fourth server can take over the middle; the client learns of it only once the second is dead. The
        // replacement's inputs are fetched from the first server, which sends them a few per message (its
        // messages are small), so the fetch takes several syncs
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 1), (1, 3), (3, 4), (1, 3)], new Pollen.Inference.Server.BlockServerOptions { MaxMessageBytes = 1024 });
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, Greedy, Ct);
        var directory = new GrowingDirectory(swarm.Spans.Take(3));
        using var model = new SwarmModel(ModelEnds.Load(swarm.Directory), directory);
        var ids = new List<int>();
        await foreach (var token in TextGenerator.GenerateAsync(model, null, Prompt, Greedy, Ct))
        {
            ids.Add(token.Id);
            if (ids.Count == 10)
            {
                await swarm.KillAsync(1);
                directory.Add(swarm.Spans[3]);
            }
        }
        Assert.Equal(local.Ids, ids);
        Assert.True(model.Bans.IsBanned(swarm.Spans[1].Address));
        var replacement = swarm.Hosts[3]!.Server;
        Assert.True(replacement.PushesReceived > 0, "the replacement is not fed by pushes");
        Assert.True(replacement.StepsPushed > 0, "the replacement does not push on");
        Assert.Equal([swarm.Spans[0], swarm.Spans[3], swarm.Spans[2]], (await model.FindRouteAsync(0, 4, cancellationToken: Ct)).Select(r => r.Server));
    }

    [Fact]
    public async Task AQuietStepIsAnsweredByTheLastServerOnlyAndTheOthersKeepTheirOutputs()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 2), (2, 4)]);
        using var channel0 = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        using var channel1 = GrpcChannel.ForAddress("http://" + swarm.Spans[1].Address);
        manual_seed(5);
        using var prompt = randn(1, 4, Config.HiddenSize);
        using var next = randn(1, 1, Config.HiddenSize);
        var promptPositions = TensorWire.Encode(Transformer.DefaultPositions(1, 4).contiguous());
        var nextPositions = TensorWire.Encode(Transformer.DefaultPositions(1, 1, 4).contiguous());

        // the head on a bare stream, to see every message it sends
        using var head = new Blocks.BlocksClient(channel0).Inference(deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: Ct);
        await head.RequestStream.WriteAsync(new InferenceRequest { Open = new OpenSession { Blocks = new BlockRange { StartBlock = 0, EndBlock = 2 }, MaxLength = 16 } }, Ct);
        Assert.True(await head.ResponseStream.MoveNext(Ct));
        await head.RequestStream.WriteAsync(new InferenceRequest { Step = new InferenceStep { Hidden = TensorWire.Encode(prompt), Positions = promptPositions, StepId = 1 } }, Ct);
        Assert.True(await head.ResponseStream.MoveNext(Ct));
        var middle = head.ResponseStream.Current.Step.Hidden;
        await using var tail = await RemoteSpan.OpenAsync(channel1, swarm.Spans[1], 2, 4, 16, 1, new SwarmModelOptions(), Ct);
        await tail.StepAsync(middle, promptPositions, Ct);

        var step = new InferenceStep { Hidden = TensorWire.Encode(next), Positions = nextPositions, StepId = 2, Quiet = true };
        step.Next.Add(tail.AsPushTarget());
        await head.RequestStream.WriteAsync(new InferenceRequest { Step = step }, Ct);
        var (output, _) = await tail.ReadStepAsync(step.Hidden, Ct);
        using (var cache = new Pollen.Model.Layers.KvCache(16))
        using (no_grad())
        {
            swarm.Local.RunBlocks(prompt, Transformer.DefaultPositions(1, 4), cache).Dispose();
            using var expected = swarm.Local.RunBlocks(next, Transformer.DefaultPositions(1, 1, 4), cache);
            RemoteBlockParityTests.AssertClose(expected, output, "the quiet chain");
        }

        // the head said nothing about step 2: the next message on its stream answers a sync, and shows it ran
        // the step and kept both outputs
        await head.RequestStream.WriteAsync(new InferenceRequest { Sync = new SyncSession { FromStep = 1 } }, Ct);
        Assert.True(await head.ResponseStream.MoveNext(Ct));
        var synced = head.ResponseStream.Current.Synced;
        Assert.NotNull(synced);
        Assert.Equal(2UL, synced.LastStepId);
        Assert.Equal(middle, synced.Outputs[0]);
        Assert.Equal([1L, 1L, Config.HiddenSize], synced.Outputs[1].Shape);
        Assert.Equal(1, swarm.Hosts[0]!.Server.StepsPushed);
        Assert.Equal(1, swarm.Hosts[1]!.Server.PushesReceived);
        await head.RequestStream.CompleteAsync();
    }

    [Fact]
    public async Task AServerPushingGarbageIsBlamedNotTheServerThatRefusedIt()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 2), (0, 2), (2, 4)]);
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, Greedy, Ct);
        using var model = swarm.Client();
        var broken = -1;
        var ids = new List<int>();
        await foreach (var token in TextGenerator.GenerateAsync(model, null, Prompt, Greedy, Ct))
        {
            ids.Add(token.Id);
            if (ids.Count == 6)
            {
                // the first server of the route starts computing NaN: its pushes carry them to the second
                broken = swarm.Hosts[0]!.Server.TokensServed > 0 ? 0 : 1;
                var server = swarm.Hosts[broken]!.Server;
                await server.RunOnComputeThreadAsync(() =>
                {
                    using var noGrad = no_grad();
                    foreach (var parameter in server.Blocks.SelectMany(b => b.parameters()))
                    {
                        parameter.fill_(float.NaN);
                    }
                    return true;
                });
            }
        }
        Assert.Equal(local.Ids, ids);
        var last = swarm.Hosts[2]!.Server;
        Assert.True(last.PushesRefused > 0, "the garbage was not pushed to the last server");
        Assert.True(model.Bans.IsBanned(swarm.Spans[broken].Address));
        Assert.False(model.Bans.IsBanned(swarm.Spans[2].Address));
        Assert.Equal([swarm.Spans[1 - broken], swarm.Spans[2]], (await model.FindRouteAsync(0, 4, cancellationToken: Ct)).Select(r => r.Server));
    }

    [Fact]
    public async Task PushesWithoutTheTokenAreDroppedAndBadOnesRefusedWithoutHarmingTheSession()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 4)]);
        var server = swarm.Hosts[0]!.Server;
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        var client = new Blocks.BlocksClient(channel);
        using var session = client.Inference(deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: Ct);
        await session.RequestStream.WriteAsync(new InferenceRequest { Open = new OpenSession { MaxLength = 16, BatchSize = 1 } }, Ct);
        Assert.True(await session.ResponseStream.MoveNext(Ct));
        var opened = session.ResponseStream.Current.Opened;
        Assert.Equal(16, opened.PushToken.Length);

        // one push stream, as a previous server keeps it: refused steps are dropped and the stream goes on
        using var push = client.Push(deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: Ct);
        var wrongToken = ByteString.CopyFrom(new byte[16]);
        await push.RequestStream.WriteAsync(Batch(new PushRequest { SessionId = opened.SessionId, PushToken = wrongToken, Step = Step(1) }), Ct);
        await push.RequestStream.WriteAsync(Batch(new PushRequest { SessionId = "999", PushToken = opened.PushToken, Step = Step(1) }), Ct);
        await BlockServerValidationTests.WaitUntilAsync(() => server.PushesRefused == 2);
        Assert.Equal(0, server.PushesReceived);

        // the session is unharmed: a step from its client runs
        await session.RequestStream.WriteAsync(new InferenceRequest { Step = Step(1) }, Ct);
        Assert.True(await session.ResponseStream.MoveNext(Ct));
        Assert.Equal(1UL, session.ResponseStream.Current.Step.StepId);

        // a pushed step in order, on the same stream, runs and is answered on the session's own stream
        await push.RequestStream.WriteAsync(Batch(new PushRequest { SessionId = opened.SessionId, PushToken = opened.PushToken, Step = Step(2, position: 1) }), Ct);
        Assert.True(await session.ResponseStream.MoveNext(Ct));
        var second = session.ResponseStream.Current.Step;
        Assert.Equal(2UL, second.StepId);
        Assert.Equal(1, server.PushesReceived);

        // out of order, or not finite: refused, and the session's client hears why; the session is unchanged
        await push.RequestStream.WriteAsync(Batch(new PushRequest { SessionId = opened.SessionId, PushToken = opened.PushToken, Step = Step(7, position: 2) }), Ct);
        Assert.True(await session.ResponseStream.MoveNext(Ct));
        Assert.Contains("step_id 7", session.ResponseStream.Current.Step.Refused, StringComparison.Ordinal);
        Assert.Null(session.ResponseStream.Current.Step.Hidden);
        var notFinite = Step(3, position: 2);
        notFinite.Hidden = TensorWire.Encode(full(1, 1, Config.HiddenSize, float.NaN));
        await push.RequestStream.WriteAsync(Batch(new PushRequest { SessionId = opened.SessionId, PushToken = opened.PushToken, Step = notFinite }), Ct);
        Assert.True(await session.ResponseStream.MoveNext(Ct));
        Assert.Contains("NaN", session.ResponseStream.Current.Step.Refused, StringComparison.Ordinal);
        Assert.Equal(4, server.PushesRefused);

        // a sync says where the session stands, with the outputs it kept, and replaces the push token
        await session.RequestStream.WriteAsync(new InferenceRequest { Sync = new SyncSession { FromStep = 1 } }, Ct);
        Assert.True(await session.ResponseStream.MoveNext(Ct));
        var synced = session.ResponseStream.Current.Synced;
        Assert.Equal(2UL, synced.LastStepId);
        Assert.Equal(2, synced.Outputs.Count);
        Assert.Equal(second.Hidden, synced.Outputs[1]);
        Assert.NotEqual(opened.PushToken, synced.PushToken);
        // a push made with the old token is dropped without a word; one with the new token runs
        await push.RequestStream.WriteAsync(Batch(new PushRequest { SessionId = opened.SessionId, PushToken = opened.PushToken, Step = Step(3, position: 2) }), Ct);
        await BlockServerValidationTests.WaitUntilAsync(() => server.PushesRefused == 5);
        await push.RequestStream.WriteAsync(Batch(new PushRequest { SessionId = opened.SessionId, PushToken = synced.PushToken, Step = Step(3, position: 2) }), Ct);
        Assert.True(await session.ResponseStream.MoveNext(Ct));
        Assert.Equal(3UL, session.ResponseStream.Current.Step.StepId);
        Assert.NotNull(session.ResponseStream.Current.Step.Hidden);
        Assert.Equal(2, server.PushesReceived);
        await push.RequestStream.CompleteAsync();
        await push;

        // a step from the client out of order ends the session
        await session.RequestStream.WriteAsync(new InferenceRequest { Step = Step(9, position: 3) }, Ct);
        var e = await Assert.ThrowsAsync<RpcException>(() => session.ResponseStream.MoveNext(Ct));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        await BlockServerValidationTests.WaitUntilAsync(() => server.SessionCount == 0);

        // a message with no steps, or too many, is malformed: that ends the stream
        foreach (var count in new[] { 0, 65 })
        {
            using var bad = client.Push(deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: Ct);
            var message = new PushBatch();
            message.Steps.Add(Enumerable.Range(0, count).Select(_ => new PushRequest { SessionId = "1", PushToken = wrongToken, Step = Step(1) }));
            var refused = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                await bad.RequestStream.WriteAsync(message, Ct);
                await bad.RequestStream.CompleteAsync();
                await bad;
            });
            Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        }
    }

    [Fact]
    public async Task TheOutputsOfABatchedForwardTravelToTheNextServerInOneMessage()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 2), (2, 4)]);
        var (first, second) = (swarm.Hosts[0]!.Server, swarm.Hosts[1]!.Server);
        using var channel0 = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        using var channel1 = GrpcChannel.ForAddress("http://" + swarm.Spans[1].Address);
        manual_seed(3);
        const int Sessions = 3;
        var prompts = Enumerable.Range(0, Sessions).Select(_ => randn(1, 4, Config.HiddenSize)).ToArray();
        var nexts = Enumerable.Range(0, Sessions).Select(_ => randn(1, 1, Config.HiddenSize)).ToArray();
        var spans = new List<(RemoteSpan Head, RemoteSpan Tail)>();
        for (var s = 0; s < Sessions; s++)
        {
            var head = await RemoteSpan.OpenAsync(channel0, swarm.Spans[0], 0, 2, 16, 1, new SwarmModelOptions(), Ct);
            var tail = await RemoteSpan.OpenAsync(channel1, swarm.Spans[1], 2, 4, 16, 1, new SwarmModelOptions(), Ct);
            var middle = await head.StepAsync(TensorWire.Encode(prompts[s]), TensorWire.Encode(Transformer.DefaultPositions(1, 4).contiguous()), Ct);
            await tail.StepAsync(middle, TensorWire.Encode(Transformer.DefaultPositions(1, 4).contiguous()), Ct);
            spans.Add((head, tail));
        }

        // hold the first server's compute thread until all three one-token steps are queued: one forward
        using var gate = new ManualResetEventSlim();
        var held = first.RunOnComputeThreadAsync(() => gate.Wait(TimeSpan.FromSeconds(30)));
        var positions = TensorWire.Encode(Transformer.DefaultPositions(1, 1, 4).contiguous());
        for (var s = 0; s < Sessions; s++)
        {
            await spans[s].Head.SendStepAsync(TensorWire.Encode(nexts[s]), positions, [spans[s].Tail.AsPushTarget()], quiet: false, Ct);
        }
        await BlockServerValidationTests.WaitUntilAsync(() => first.PendingWork == Sessions);
        gate.Set();
        Assert.True(await held);

        for (var s = 0; s < Sessions; s++)
        {
            var (middle, pushError) = await spans[s].Head.ReadStepAsync(TensorWire.Encode(nexts[s]), Ct);
            Assert.Null(pushError);
            var (output, _) = await spans[s].Tail.ReadStepAsync(middle, Ct);
            // the same as running all four blocks locally
            using var cache = new Pollen.Model.Layers.KvCache(16);
            using (no_grad())
            {
                swarm.Local.RunBlocks(prompts[s], Transformer.DefaultPositions(1, 4), cache).Dispose();
                using var expected = swarm.Local.RunBlocks(nexts[s], Transformer.DefaultPositions(1, 1, 4), cache);
                RemoteBlockParityTests.AssertClose(expected, output, $"session {s}");
            }
        }
        Assert.Equal(1, first.BatchedSteps);
        Assert.Equal(Sessions, first.StepsPushed);
        Assert.Equal(1, first.PushMessages);
        Assert.Equal(Sessions, second.PushesReceived);
        foreach (var (head, tail) in spans)
        {
            await head.DisposeAsync();
            await tail.DisposeAsync();
        }
    }

    [Fact]
    public async Task MalformedNextTargetsAreRefusedBeforeAnyWork()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 4)]);
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        var client = new Blocks.BlocksClient(channel);
        var target = new PushTarget { Address = "127.0.0.1:1", SessionId = "1", PushToken = ByteString.CopyFrom(new byte[16]), StepId = 1 };
        var tooMany = Step(1);
        tooMany.Next.Add(Enumerable.Repeat(target, 65));
        var badToken = Step(1);
        badToken.Next.Add(new PushTarget(target) { PushToken = ByteString.CopyFrom(new byte[3]) });
        var badAddress = Step(1);
        badAddress.Next.Add(new PushTarget(target) { Address = "not an address" });
        foreach (var step in new[] { tooMany, badToken, badAddress })
        {
            using var call = client.Inference(deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: Ct);
            await call.RequestStream.WriteAsync(new InferenceRequest { Open = new OpenSession { MaxLength = 16, BatchSize = 1 } }, Ct);
            Assert.True(await call.ResponseStream.MoveNext(Ct));
            await call.RequestStream.WriteAsync(new InferenceRequest { Step = step }, Ct);
            var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(Ct));
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        }
        Assert.Equal(0, swarm.Hosts[0]!.Server.StepsPushed);
    }

    [Fact]
    public async Task AnUnreachableNextServerIsReportedAndTheClientCarriesTheStep()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 4)], new Pollen.Inference.Server.BlockServerOptions { PushTimeout = TimeSpan.FromSeconds(2) });
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        var client = new Blocks.BlocksClient(channel);
        using var call = client.Inference(deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: Ct);
        await call.RequestStream.WriteAsync(new InferenceRequest { Open = new OpenSession { MaxLength = 16, BatchSize = 1 } }, Ct);
        Assert.True(await call.ResponseStream.MoveNext(Ct));
        var step = Step(1);
        // a port nobody listens on
        step.Next.Add(new PushTarget { Address = "127.0.0.1:1", SessionId = "1", PushToken = ByteString.CopyFrom(new byte[16]), StepId = 1 });
        await call.RequestStream.WriteAsync(new InferenceRequest { Step = step }, Ct);
        Assert.True(await call.ResponseStream.MoveNext(Ct));
        var reply = call.ResponseStream.Current.Step;
        Assert.Equal(1UL, reply.StepId);
        Assert.Contains("127.0.0.1:1", reply.PushError, StringComparison.Ordinal);
        Assert.NotNull(reply.Hidden);
        Assert.Equal(0, swarm.Hosts[0]!.Server.StepsPushed);
    }

    private static InferenceStep Step(ulong id, int position = 0) => new()
    {
        Hidden = TensorWire.Encode(full(1, 1, Config.HiddenSize, 0.5f)),
        Positions = TensorWire.Encode(Transformer.DefaultPositions(1, 1, position).contiguous()),
        StepId = id,
    };

    private static PushBatch Batch(PushRequest push) => new() { Steps = { push } };

    /// <summary>A server list that grows while a client uses it: a server joining the swarm.</summary>
    private sealed class GrowingDirectory(IEnumerable<ServerSpan> initial) : Pollen.Inference.Routing.IServerDirectory
    {
        private volatile ServerSpan[] _servers = [.. initial];

        public string Description => "the test's servers";

        public void Add(ServerSpan server) => _servers = [.. _servers, server];

        public Task<IReadOnlyList<ServerSpan>> GetServersAsync(bool refresh, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<ServerSpan>>(_servers);
    }
}
