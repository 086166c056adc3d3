using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Inference.Client;
using Pollen.Inference.Protos;
using Pollen.Model.Generation;
using Pollen.Swarm.Transport;
using Pollen.Tests.Model;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Tests.Inference;

/// <summary>A server that answers with garbage is banned and routed around; the tokens do not change.</summary>
[Collection(nameof(InferenceSerial))]
public sealed class LyingServerTests
{
    public enum Lie
    {
        NotANumber,
        WrongShape,
        TruncatedBytes,
    }

    [Theory]
    [InlineData(Lie.NotANumber)]
    [InlineData(Lie.WrongShape)]
    [InlineData(Lie.TruncatedBytes)]
    public async Task AServerReturningGarbageIsBannedAndRoutedAround(Lie lie)
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await InferenceSwarm.StartAsync(config, [(0, 4)]);
        var honest = swarm.Hosts[0]!.Server.Info();
        var builder = GrpcHost.CreateBuilder("127.0.0.1", 0, 16 << 20, null, NullLoggerFactory.Instance);
        builder.Services.AddSingleton(new LyingBlocks(honest, lie));
        await using var app = builder.Build();
        app.MapGrpcService<LyingBlocks>();
        await app.StartAsync(TestContext.Current.CancellationToken);
        // the liar claims to be much faster, so the route takes it first
        var liar = new ServerSpan($"127.0.0.1:{GrpcHost.BoundPort(app)}", 0, 4) { Throughput = 1e6 };

        var options = new GenerationOptions { MaxNewTokens = 12, StopAtEos = false };
        int[] prompt = [3, 1, 4, 1, 5];
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, prompt, options, TestContext.Current.CancellationToken);
        using var model = new SwarmModel(ModelEnds.Load(swarm.Directory), [swarm.Spans[0] with { Throughput = 10 }, liar]);
        var remote = await TextGenerator.GenerateToEndAsync(model, null, prompt, options, TestContext.Current.CancellationToken);
        Assert.Equal(local.Ids, remote.Ids);
        Assert.True(model.Bans.IsBanned(liar.Address));
        await app.StopAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>Describes itself like the honest server, opens sessions, and answers every step with garbage.</summary>
    private sealed class LyingBlocks(InfoReply info, Lie lie) : Blocks.BlocksBase
    {
        public override Task<InfoReply> Info(InfoRequest request, ServerCallContext context) => Task.FromResult(info);

        public override async Task Inference(IAsyncStreamReader<InferenceRequest> requestStream, IServerStreamWriter<InferenceReply> responseStream, ServerCallContext context)
        {
            while (await requestStream.MoveNext(context.CancellationToken))
            {
                var request = requestStream.Current;
                if (request.KindCase == InferenceRequest.KindOneofCase.Open)
                {
                    await responseStream.WriteAsync(new InferenceReply { Opened = new SessionOpened { SessionId = "1", FreeCacheTokens = 1000 } });
                }
                else if (request.KindCase == InferenceRequest.KindOneofCase.Step)
                {
                    var hidden = request.Step.Hidden.Clone();
                    var bytes = hidden.Bytes.ToByteArray();
                    switch (lie)
                    {
                        case Lie.NotANumber:
                            BitConverter.GetBytes(float.NaN).CopyTo(bytes, 0);
                            hidden.Bytes = Google.Protobuf.ByteString.CopyFrom(bytes);
                            break;
                        case Lie.WrongShape:
                            hidden.Shape[1] += 1;
                            break;
                        case Lie.TruncatedBytes:
                            hidden.Bytes = Google.Protobuf.ByteString.CopyFrom(bytes, 0, bytes.Length / 2);
                            break;
                    }
                    await responseStream.WriteAsync(new InferenceReply { Step = new StepResult { StepId = request.Step.StepId, Hidden = hidden } });
                }
            }
        }
    }
}
