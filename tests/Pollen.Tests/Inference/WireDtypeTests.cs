using System.Buffers.Binary;
using System.Net;
using Google.Protobuf;
using Grpc.Net.Client;
using Pollen.Inference.Client;
using Pollen.Inference.Protos;
using Pollen.Inference.Wire;
using Pollen.Model.Layers;
using Pollen.Model.Llama;
using Pollen.Tests.Model;
using static TorchSharp.torch;

namespace Pollen.Tests.Inference;

/// <summary>Hidden states in half precision on the wire, and streams that break off in the middle of a message.</summary>
[Collection(nameof(InferenceSerial))]
public class WireDtypeTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(ScalarType.Float16, 2e-3)]
    [InlineData(ScalarType.BFloat16, 2e-2)]
    public async Task HalfPrecisionActivationsMatchTheLocalBlocksWithinTheirRounding(ScalarType wire, double relativeTolerance)
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await InferenceSwarm.StartAsync(config, [(0, 2), (2, 4)]);
        manual_seed(3);
        using var input = randn(1, 6, config.HiddenSize);
        using var positions = Transformer.DefaultPositions(1, 6).contiguous();
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        await using var span = await RemoteSpan.OpenAsync(channel, swarm.Spans[0], 0, 2, 8, 1, new SwarmModelOptions { WireDtype = wire }, Ct);
        var sent = TensorWire.Encode(input, wire);
        var reply = await span.StepAsync(sent, TensorWire.Encode(positions), Ct);
        Assert.Equal(sent.Dtype, reply.Dtype); // answered in the dtype it was asked in
        Assert.Equal(input.numel() * 2, reply.Bytes.Length); // half the bytes of f32

        using var scope = NewDisposeScope();
        using var cache = new KvCache(8);
        // grad mode is per thread: a no_grad scope must not live across an await
        Tensor expected;
        using (no_grad())
        {
            expected = swarm.Local.Blocks[1].forward(swarm.Local.Blocks[0].forward(input, positions, cache), positions, cache);
        }
        var remote = TensorWire.Decode(reply).to_type(ScalarType.Float32);
        var error = ((remote - expected).abs().max() / expected.abs().max()).item<float>();
        Assert.True(error <= relativeTolerance, $"{wire}: max error {error} of the largest activation");
        Assert.True(error > 0, "half precision should not be bit-exact"); // the wire dtype really was used

        // a whole model through the swarm: logits stay close to local ones
        using var model = swarm.Client(new SwarmModelOptions { WireDtype = wire });
        using var session = model.OpenSession(16);
        using var ids = tensor(new long[] { 3, 17, 5, 22, 9 }).unsqueeze(0);
        using var logits = await session.ForwardAsync(ids, Ct);
        using var localLogits = swarm.Local.forward(ids).select(1, -1);
        var logitError = (logits - localLogits).abs().max().item<float>() / localLogits.abs().max().item<float>();
        Assert.True(logitError <= relativeTolerance * 5, $"{wire}: logits differ by {logitError} relative");
    }

    [Fact]
    public async Task AStreamCutInTheMiddleOfAMessageFreesItsSessionAndTheServerKeepsServing()
    {
        var config = ModelTestConfigs.Tiny();
        await using var swarm = await InferenceSwarm.StartAsync(config, [(0, 3)]);
        var server = swarm.Hosts[0]!.Server;
        for (var round = 0; round < 5; round++)
        {
            using var handler = new SocketsHttpHandler();
            using var http = new HttpClient(handler);
            var opened = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var request = new HttpRequestMessage(HttpMethod.Post, $"http://{swarm.Spans[0].Address}/pollen.blocks.Blocks/Inference")
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new CutStreamContent(new InferenceRequest { Open = new OpenSession { MaxLength = 16, BatchSize = 1 } }, opened.Task),
            };
            request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/grpc");
            request.Headers.TryAddWithoutValidation("TE", "trailers");
            var send = http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
            await BlockServerValidationTests.WaitUntilAsync(() => server.SessionCount == 1);
            opened.SetResult(); // now write half a message and break the stream
            await Assert.ThrowsAnyAsync<Exception>(async () =>
            {
                using var response = await send;
                await response.Content.ReadAsByteArrayAsync(Ct);
                response.TrailingHeaders.TryGetValues("grpc-status", out var status);
                throw new InvalidOperationException($"the stream ended normally with status {status?.FirstOrDefault()}");
            });
            await BlockServerValidationTests.WaitUntilAsync(() => server.SessionCount == 0 && server.FreeCacheTokens == server.Options.CacheTokens);
        }
        // still serving
        using var model = swarm.Client();
        using var session = model.OpenSession(8);
        using var ids = tensor(new long[] { 1, 2, 3 }).unsqueeze(0);
        using var logits = await session.ForwardAsync(ids, Ct);
        Assert.Equal([1L, config.VocabSize], logits.shape);
    }

    /// <summary>A request body with one whole gRPC message, then, once told, the first bytes of a second one and a failure (the stream is reset).</summary>
    private sealed class CutStreamContent(InferenceRequest first, Task cut) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(Frame(first.ToByteArray()));
            await stream.FlushAsync();
            await cut;
            var half = Frame(new byte[4096]).AsMemory(0, 1000); // announces 4096 bytes, sends fewer
            await stream.WriteAsync(half);
            await stream.FlushAsync();
            throw new IOException("connection lost mid-message");
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        private static byte[] Frame(byte[] message)
        {
            var frame = new byte[5 + message.Length];
            BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
            message.CopyTo(frame, 5);
            return frame;
        }
    }
}
