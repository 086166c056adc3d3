using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Time.Testing;
using Pollen.Inference.Client;
using Pollen.Inference.Protos;
using Pollen.Inference.Server;
using Pollen.Inference.Wire;
using Pollen.Model.Llama;
using Pollen.Tests.Model;
using static TorchSharp.torch;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Tests.Inference;

[Collection(nameof(InferenceSerial))]
public class BlockServerValidationTests
{
    private static readonly Pollen.Model.Config.ModelConfig Config = ModelTestConfigs.Tiny();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static DateTime Deadline => DateTime.UtcNow.AddSeconds(30);

    private static WireTensor Hidden(long batch, long tokens, long width, float fill = 0.5f) => TensorWire.Encode(full(batch, tokens, width, fill));

    private static WireTensor Positions(long batch, long tokens, long start = 0) => TensorWire.Encode(Transformer.DefaultPositions(batch, tokens, start).contiguous());

    private static async Task<StatusCode> ForwardStatusAsync(Blocks.BlocksClient client, ForwardRequest request)
    {
        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.ForwardAsync(request, deadline: Deadline, cancellationToken: Ct));
        Assert.DoesNotContain("Exception", e.Status.Detail, StringComparison.Ordinal); // a message, never a stack trace
        Assert.NotEmpty(e.Status.Detail);
        return e.StatusCode;
    }

    [Fact]
    public async Task MalformedRequestsGetClearStatusesAndTheServerKeepsServing()
    {
        var options = new BlockServerOptions { MaxMessageBytes = 16 << 10 };
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 3)], options);
        var server = swarm.Hosts[0]!.Server;
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        var client = new Blocks.BlocksClient(channel);

        Assert.Equal(StatusCode.InvalidArgument, await ForwardStatusAsync(client, new ForwardRequest { Hidden = Hidden(1, 3, Config.HiddenSize + 1) }));
        Assert.Equal(StatusCode.InvalidArgument, await ForwardStatusAsync(client, new ForwardRequest { Hidden = TensorWire.Encode(ones(1, 3)) }));
        Assert.Equal(StatusCode.InvalidArgument, await ForwardStatusAsync(client, new ForwardRequest { Hidden = Pollen.Swarm.Tensors.TensorCodec.Encode<double>(new double[3 * Config.HiddenSize], [1, 3, Config.HiddenSize]) }));
        Assert.Equal(StatusCode.InvalidArgument, await ForwardStatusAsync(client, new ForwardRequest { Hidden = Hidden(1, 3, Config.HiddenSize, float.NaN) }));
        Assert.Equal(StatusCode.InvalidArgument, await ForwardStatusAsync(client, new ForwardRequest { Hidden = Hidden(1, 3, Config.HiddenSize, float.PositiveInfinity) }));
        Assert.Equal(StatusCode.InvalidArgument, await ForwardStatusAsync(client, new ForwardRequest { Hidden = Hidden(1, 3, Config.HiddenSize), Positions = Positions(1, 2) }));
        Assert.Equal(StatusCode.OutOfRange, await ForwardStatusAsync(client, new ForwardRequest { Hidden = Hidden(1, 3, Config.HiddenSize), Positions = Positions(1, 3, Config.MaxPositionEmbeddings - 1) }));
        Assert.Equal(StatusCode.OutOfRange, await ForwardStatusAsync(client, new ForwardRequest { Hidden = Hidden(1, 3, Config.HiddenSize), Blocks = new BlockRange { StartBlock = 2, EndBlock = 4 } }));
        var truncated = Hidden(1, 3, Config.HiddenSize);
        truncated.Bytes = Google.Protobuf.ByteString.CopyFrom(truncated.Bytes.Span[..8]);
        Assert.Equal(StatusCode.InvalidArgument, await ForwardStatusAsync(client, new ForwardRequest { Hidden = truncated }));
        // larger than the message cap: refused by the transport before it is buffered
        Assert.Equal(StatusCode.ResourceExhausted, await ForwardStatusAsync(client, new ForwardRequest { Hidden = Hidden(16, 64, Config.HiddenSize) }));

        // a step before open, an empty request, a second open, a step past max_length
        Assert.Equal(StatusCode.FailedPrecondition, await StreamStatusAsync(client, new InferenceRequest { Step = new InferenceStep { Hidden = Hidden(1, 1, Config.HiddenSize), Positions = Positions(1, 1) } }));
        Assert.Equal(StatusCode.InvalidArgument, await StreamStatusAsync(client, new InferenceRequest()));
        Assert.Equal(StatusCode.FailedPrecondition, await StreamStatusAsync(client, Open(4), Open(4)));
        Assert.Equal(StatusCode.OutOfRange, await StreamStatusAsync(client, Open(2), new InferenceRequest { Step = new InferenceStep { Hidden = Hidden(1, 3, Config.HiddenSize), Positions = Positions(1, 3) } }));
        Assert.Equal(StatusCode.OutOfRange, await StreamStatusAsync(client, Open(Config.MaxPositionEmbeddings + 1)));

        // still serving, and no session leaked
        var reply = await client.ForwardAsync(new ForwardRequest { Hidden = Hidden(1, 3, Config.HiddenSize) }, deadline: Deadline, cancellationToken: Ct);
        Assert.Equal([1L, 3, Config.HiddenSize], reply.Hidden.Shape);
        await WaitUntilAsync(() => server.SessionCount == 0 && server.FreeCacheTokens == options.CacheTokens);
    }

    [Fact]
    public async Task ASessionOverTheCacheBudgetIsRefusedBeforeAnyWork()
    {
        var options = new BlockServerOptions { CacheTokens = 100 };
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 3)], options);
        var server = swarm.Hosts[0]!.Server;
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        var modelOptions = new SwarmModelOptions();
        await using (var first = await RemoteSpan.OpenAsync(channel, swarm.Spans[0], 0, 3, 60, 1, modelOptions, Ct))
        {
            Assert.Equal(40, server.FreeCacheTokens);
            var e = await Assert.ThrowsAsync<RpcException>(() => RemoteSpan.OpenAsync(channel, swarm.Spans[0], 0, 3, 21, 2, modelOptions, Ct));
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
            Assert.Contains("needs 42 cache tokens", e.Status.Detail, StringComparison.Ordinal);
            Assert.Contains("only 40 of 100 are free", e.Status.Detail, StringComparison.Ordinal);
            Assert.Equal(1, server.SessionCount);
            Assert.Equal(40, server.FreeCacheTokens);
            var output = await first.StepAsync(Hidden(1, 2, Config.HiddenSize), Positions(1, 2), Ct);
            Assert.Equal([1L, 2, Config.HiddenSize], output.Shape);
        }
        await WaitUntilAsync(() => server.FreeCacheTokens == 100);
        await using var second = await RemoteSpan.OpenAsync(channel, swarm.Spans[0], 0, 3, 50, 2, modelOptions, Ct);
        Assert.Equal(0, server.FreeCacheTokens);
    }

    [Fact]
    public async Task AnIdleSessionTimesOutAndFreesItsCache()
    {
        var time = new FakeTimeProvider();
        var options = new BlockServerOptions { CacheTokens = 64, IdleTimeout = TimeSpan.FromMinutes(1) };
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 3)], options, time);
        var server = swarm.Hosts[0]!.Server;
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        var client = new Blocks.BlocksClient(channel);
        using var call = client.Inference(deadline: Deadline, cancellationToken: Ct);
        await call.RequestStream.WriteAsync(Open(64), Ct);
        Assert.True(await call.ResponseStream.MoveNext(Ct));
        await call.RequestStream.WriteAsync(new InferenceRequest { Step = new InferenceStep { Hidden = Hidden(1, 2, Config.HiddenSize), Positions = Positions(1, 2) } }, Ct);
        Assert.True(await call.ResponseStream.MoveNext(Ct));
        time.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(1, server.SessionCount); // used 50 s ago: still open
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(0, server.SessionCount);
        Assert.Equal(64, server.FreeCacheTokens);
        // the server ends the stream with a status saying why (read before writing again: a write racing
        // the stream's reset would only see CANCELLED)
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(Ct));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
    }

    [Fact]
    public async Task ConcurrentOneTokenStepsAreBatchedAndEqualSeparateSteps()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 3)], new BlockServerOptions { BatchingWindow = TimeSpan.Zero });
        var server = swarm.Hosts[0]!.Server;
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        manual_seed(9);
        const int Rounds = 6;
        var prefixes = new[] { 3, 5, 2 };
        var inputs = prefixes.Select(n => randn(1, n + Rounds, Config.HiddenSize)).ToArray();
        var spans = new List<RemoteSpan>();
        var expected = new List<Tensor[]>();
        for (var s = 0; s < prefixes.Length; s++)
        {
            using var cache = new Pollen.Model.Layers.KvCache(16);
            using (no_grad())
            {
                swarm.Local.RunBlocks(inputs[s].narrow(1, 0, prefixes[s]), Transformer.DefaultPositions(1, prefixes[s]), cache).Dispose();
                expected.Add([.. Enumerable.Range(0, Rounds).Select(r => swarm.Local.RunBlocks(inputs[s].narrow(1, prefixes[s] + r, 1), Transformer.DefaultPositions(1, 1, prefixes[s] + r), cache))]);
            }
            var span = await RemoteSpan.OpenAsync(channel, swarm.Spans[0], 0, 3, 16, 1, new SwarmModelOptions(), Ct);
            spans.Add(span);
            await span.StepAsync(TensorWire.Encode(inputs[s].narrow(1, 0, prefixes[s])), Positions(1, prefixes[s]), Ct);
        }
        // rounds 0-3: all three step together; from round 1 on they have run together before, so their
        // caches move into one buffer; rounds 4-5: session 1 has closed and the other two go on together
        var open = new List<int> { 0, 1, 2 };
        for (var r = 0; r < Rounds; r++)
        {
            if (r == 4)
            {
                await spans[1].DisposeAsync();
                open.Remove(1);
                // the close frees the cache on the compute thread: let it run before the thread is held
                await WaitUntilAsync(() => server.SessionCount == open.Count && server.PendingWork == 0);
            }
            // hold the compute thread until every open session's one-token step is queued
            using var gate = new ManualResetEventSlim();
            var held = server.RunOnComputeThreadAsync(() => gate.Wait(TimeSpan.FromSeconds(30)));
            var steps = open.Select(s => spans[s].StepAsync(TensorWire.Encode(inputs[s].narrow(1, prefixes[s] + r, 1)), Positions(1, 1, prefixes[s] + r), Ct)).ToArray();
            await WaitUntilAsync(() => server.PendingWork == open.Count);
            gate.Set();
            Assert.True(await held);
            var outputs = await Task.WhenAll(steps);
            for (var i = 0; i < open.Count; i++)
            {
                RemoteBlockParityTests.AssertClose(expected[open[i]][r], outputs[i], $"session {open[i]}, round {r}");
            }
            Assert.Equal(r + 1, server.BatchedSteps);
            Assert.Equal(r switch { 0 => 0, < 4 => 1, 4 => 1, _ => 2 }, server.SharedCaches);
        }
        foreach (var s in open)
        {
            await spans[s].DisposeAsync();
        }
    }

    private static InferenceRequest Open(int maxLength) => new() { Open = new OpenSession { MaxLength = maxLength, BatchSize = 1 } };

    private static async Task<StatusCode> StreamStatusAsync(Blocks.BlocksClient client, params InferenceRequest[] requests)
    {
        using var call = client.Inference(deadline: Deadline, cancellationToken: Ct);
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            foreach (var request in requests)
            {
                await call.RequestStream.WriteAsync(request, Ct);
                if (!await call.ResponseStream.MoveNext(Ct))
                {
                    return;
                }
            }
        });
        return e.StatusCode;
    }

    internal static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 20 s");
            await Task.Delay(5, Ct);
        }
    }
}
