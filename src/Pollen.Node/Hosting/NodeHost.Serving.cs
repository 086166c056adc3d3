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
        var (start, end) = ChooseSpan(_options, config.NumHiddenLayers, others.Select(s => s.OwnSpan));
        _preferredSpan = _announcedSpan = (start, end);
        // a node holding the whole model (it trains or follows the run) serves every block it may be asked
        // for, so it can cover blocks the swarm loses; it announces its own span unless there is a gap
        var blocks = _model is null ? ModelCheckpoint.LoadBlocks(_options.Model!, start, end) : CopyBlocks(_model, 0, config.NumHiddenLayers);
        _server = new BlockServer(blocks, new BlockServerOptions { ModelId = modelId }, _time, _logging.CreateLogger<BlockServer>());
        _teardown.Add(() =>
        {
            _server.Dispose();
            return ValueTask.CompletedTask;
        });
        if (_options.PushPort >= 0)
        {
            var lane = _server.ListenForPushes(_options.Listen, _options.PushPort);
            _teardown.Add(() =>
            {
                lane.Dispose();
                return ValueTask.CompletedTask;
            });
        }
        var throughput = await _server.MeasureThroughputAsync().ConfigureAwait(false);
        _slot!.Server = _server;
        _announcer = BlockServing.StartAnnouncing(_node.Dht, _server, throughput, BlockServing.DefaultTtl, _time, _logging.CreateLogger("Pollen.Announcer"), () => AnnouncedSpan, _preferredSpan);
        await _announcer.FirstAttempt.WaitAsync(cancellationToken).ConfigureAwait(false);
        Log.ServingSpan(_logger, start, end - 1, modelId, throughput, others.Count);
    }

    /// <summary>The blocks this node announces: its chosen span, or every block it holds while others leave a gap.</summary>
    private (int Start, int End) AnnouncedSpan
    {
        get
        {
            lock (_spanLock)
            {
                return _announcedSpan;
            }
        }
    }

    /// <summary>
    /// Keeps the model covered: every few seconds reads who serves which blocks (leaving out servers this
    /// node's own client has banned — a peer that died is found by the first request through it, long
    /// before its announcement expires); while some block outside this node's span has no other live
    /// server, the node announces every block it holds, and it goes back to its span once others cover it.
    /// </summary>
    private async Task KeepCoverageAsync(string modelId, int blockCount, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(_options.EffectiveCoverageInterval, _time, cancellationToken).ConfigureAwait(false);
            try
            {
                var servers = await ModelServers.ListAsync(_node!.Dht, modelId, blockCount, cancellationToken).ConfigureAwait(false);
                var covered = new bool[blockCount];
                foreach (var other in servers.Where(s => s.PeerId != PeerId && !(_apiModel?.Bans.IsBanned(s.Address) ?? false)))
                {
                    for (var b = Math.Max(0, other.StartBlock); b < Math.Min(blockCount, other.EndBlock); b++)
                    {
                        covered[b] = true;
                    }
                }
                var (start, end) = _preferredSpan;
                var gaps = Enumerable.Range(0, blockCount).Where(b => !covered[b] && (b < start || b >= end)).ToList();
                (int Start, int End) want = gaps.Count > 0 && _server is { } server ? (server.StartBlock, server.EndBlock) : _preferredSpan;
                bool changed;
                lock (_spanLock)
                {
                    changed = want != _announcedSpan;
                    _announcedSpan = want;
                }
                if (changed)
                {
                    Log.CoverageChanged(_logger, want.Start, want.End - 1, gaps.Count == 0 ? "others serve the rest again" : $"nobody else serves blocks {string.Join(",", gaps)}");
                    _announcer?.Poke();
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.CoverageCheckFailed(_logger, e.Message);
            }
        }
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
