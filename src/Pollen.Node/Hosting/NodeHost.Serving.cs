using Microsoft.Extensions.Logging;
using Pollen.Inference.Routing;
using Pollen.Inference.Server;
using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using static TorchSharp.torch;

namespace Pollen.Node.Hosting;

public sealed partial class NodeHost
{
    /// <summary>
    /// Chooses the span (fixed, or the blocks the fewest peers serve), builds a server over copies of the
    /// model's blocks (training goes on in the original), measures it, and announces it.
    /// </summary>
    private async Task StartServingAsync(ModelConfig config, string modelId, CancellationToken cancellationToken)
    {
        var servers = await ModelServers.ListAsync(_node!.Dht, modelId, config.NumHiddenLayers, cancellationToken).ConfigureAwait(false);
        var others = servers.Where(s => s.PeerId != PeerId).ToList();
        var fingerprint = config.Fingerprint();
        if (others.FirstOrDefault(s => s.ConfigFingerprint != fingerprint) is { } other)
        {
            throw new ArgumentException($"the swarm serves a model '{modelId}' with another architecture (config {other.ConfigFingerprint}, this node {fingerprint}); use another --model-id or --preset");
        }
        var (start, end) = ChooseSpan(_options, config.NumHiddenLayers, others.Select(s => (s.StartBlock, s.EndBlock)));
        var blocks = _model is null ? ModelCheckpoint.LoadBlocks(_options.Model!, start, end) : CopyBlocks(_model, start, end);
        _server = new BlockServer(blocks, new BlockServerOptions { ModelId = modelId }, _time, _logging.CreateLogger<BlockServer>());
        _teardown.Add(() =>
        {
            _server.Dispose();
            return ValueTask.CompletedTask;
        });
        var throughput = await _server.MeasureThroughputAsync().ConfigureAwait(false);
        _slot!.Server = _server;
        _announcer = BlockServing.StartAnnouncing(_node.Dht, _server, throughput, BlockServing.DefaultTtl, _time, _logging.CreateLogger("Pollen.Announcer"));
        await _announcer.FirstAttempt.WaitAsync(cancellationToken).ConfigureAwait(false);
        Log.ServingSpan(_logger, start, end - 1, modelId, throughput, others.Count);
    }

    /// <summary>
    /// The span policy: <c>--blocks</c> as given; <c>--num-blocks N</c> → the N consecutive blocks the
    /// fewest peers serve (<see cref="SpanChooser.LeastServed"/>); neither → every block.
    /// </summary>
    /// <exception cref="ArgumentException">The span does not fit the model.</exception>
    public static (int Start, int End) ChooseSpan(NodeOptions options, int blockCount, IEnumerable<(int Start, int End)> servedByOthers)
    {
        if (options.Blocks is { } text)
        {
            if (!NodeOptions.TryParseBlocks(text, out var span) || span.End > blockCount)
            {
                throw new ArgumentException($"--blocks {text}: give start:end with 0 <= start < end <= {blockCount} (end exclusive)");
            }
            return span;
        }
        if (options.NumBlocks is { } count)
        {
            if (count > blockCount)
            {
                throw new ArgumentException($"--num-blocks must be 1..{blockCount} (the model has {blockCount} blocks), got {count}");
            }
            return SpanChooser.LeastServed(servedByOthers, blockCount, count);
        }
        return (0, blockCount);
    }

    /// <summary>Fresh blocks start..end-1 holding copies of <paramref name="model"/>'s parameters (eval mode).</summary>
    internal static Block[] CopyBlocks(Transformer model, int start, int end)
    {
        using var noGrad = no_grad();
        var blocks = new Block[end - start];
        for (var i = start; i < end; i++)
        {
            var copy = new Block(model.Config, i);
            var source = model.Blocks[i].named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, parameter) in copy.named_parameters())
            {
                parameter.copy_(source[name]);
            }
            copy.eval();
            blocks[i - start] = copy;
        }
        return blocks;
    }
}
