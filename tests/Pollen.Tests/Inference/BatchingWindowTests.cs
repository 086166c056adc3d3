using System.Diagnostics;
using Grpc.Net.Client;
using Pollen.Inference.Client;
using Pollen.Inference.Server;
using Pollen.Inference.Wire;
using Pollen.Model.Llama;
using Pollen.Tests.Model;
using static TorchSharp.torch;

namespace Pollen.Tests.Inference;

/// <summary>The batching window is spent only while another active session may still join the batch.</summary>
[Collection(nameof(InferenceSerial))]
public class BatchingWindowTests
{
    private static readonly Pollen.Model.Config.ModelConfig Config = ModelTestConfigs.Tiny();

    /// <summary>Far longer than any step: a test that waited for it would time out.</summary>
    private static readonly BlockServerOptions LongWindow = new() { BatchingWindow = TimeSpan.FromSeconds(20) };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ALoneSessionNeverWaitsForTheWindow()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 3)], LongWindow);
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        await using var span = await RemoteSpan.OpenAsync(channel, swarm.Spans[0], 0, 3, 16, 1, new SwarmModelOptions(), Ct);
        var clock = Stopwatch.StartNew();
        for (var t = 0; t < 5; t++)
        {
            await span.StepAsync(TensorWire.Encode(randn(1, 1, Config.HiddenSize)), TensorWire.Encode(Transformer.DefaultPositions(1, 1, t).contiguous()), Ct);
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"5 one-token steps of a lone session took {clock.Elapsed}");
        Assert.Equal(0, swarm.Hosts[0]!.Server.BatchedSteps);
    }

    [Fact]
    public async Task ActiveSessionsAreWaitedForUntilAllHaveJoined()
    {
        await using var swarm = await InferenceSwarm.StartAsync(Config, [(0, 3)], LongWindow);
        var server = swarm.Hosts[0]!.Server;
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        var spans = new List<RemoteSpan>();
        for (var s = 0; s < 3; s++)
        {
            // a prompt step each makes the sessions active
            var span = await RemoteSpan.OpenAsync(channel, swarm.Spans[0], 0, 3, 16, 1, new SwarmModelOptions(), Ct);
            await span.StepAsync(TensorWire.Encode(randn(1, 4, Config.HiddenSize)), TensorWire.Encode(Transformer.DefaultPositions(1, 4).contiguous()), Ct);
            spans.Add(span);
        }
        var clock = Stopwatch.StartNew();
        // one-token steps sent one after another, not together: the first waits for the other two
        var steps = new List<Task<Pollen.Swarm.Protos.Tensor>>();
        foreach (var span in spans)
        {
            steps.Add(span.StepAsync(TensorWire.Encode(randn(1, 1, Config.HiddenSize)), TensorWire.Encode(Transformer.DefaultPositions(1, 1, 4).contiguous()), Ct));
        }
        await Task.WhenAll(steps);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the batch took {clock.Elapsed}: it waited beyond the last session's arrival");
        Assert.Equal(1, server.BatchedSteps);
        foreach (var span in spans)
        {
            await span.DisposeAsync();
        }
    }
}
