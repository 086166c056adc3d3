using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Node.Status;
using Pollen.Swarm;
using Pollen.Swarm.Transport;
using Pollen.Training.Collaborative;
using Pollen.Training.Collaborative.Network;
using Pollen.Training.Data;
using Pollen.Training.Local;

namespace Pollen.Node.Hosting;

public sealed partial class NodeHost
{
    /// <summary>Seed of the built-in corpus (the same text on every peer, as <c>pollen train</c> uses).</summary>
    public const int CorpusSeed = 1234;

    /// <summary>Rounds the inner learning-rate schedule spans; a node trains on past it at the final rate.</summary>
    private const int ScheduleRounds = 10_000;

    private readonly List<RoundLoss> _losses = [];
    private double _tokensPerSecond;
    private int _lastGroupSize;
    private string? _roundHash;

    private DilocoPeer CreatePeer(Transformer model)
    {
        var seqLen = Math.Min(_options.EffectiveSeqLen, model.Config.MaxPositionEmbeddings);
        var documents = _options.Data is null
            ? SyntheticCorpus.Stories(CorpusSeed, (long)_options.EffectiveCorpusMb * 1024 * 1024).ToList()
            : TextCorpus.Load(_options.Data);
        // the run's seed for the validation split (the same everywhere); this peer's own order for batches
        var data = TokenDataset.FromDocuments(documents, ByteTokenizer.Instance, seqLen, seed: _options.Seed);
        var orderSeed = BitConverter.ToInt32(_identity!.PublicKey, 0) & int.MaxValue;
        var innerSteps = _options.EffectiveInnerSteps;
        var inner = new TrainerOptions
        {
            Steps = ScheduleRounds * innerSteps,
            WarmupSteps = Math.Min(100, 4 * innerSteps),
            BatchSize = _options.EffectiveBatchSize,
            Seed = orderSeed,
            EvalEvery = int.MaxValue,
            EvalBatches = _options.Dev ? 4 : 16,
        };
        return new DilocoPeer(model, data, inner, new DilocoOptions { InnerSteps = innerSteps });
    }

    /// <summary>Rounds until stopped: catch up when behind, train, average, checkpoint, serve the new weights.</summary>
    private async Task TrainAsync(CancellationToken stop)
    {
        var diloco = _diloco!;
        var peer = diloco.Peer;
        Volatile.Write(ref _roundHash, peer.ParameterHash);
        await diloco.PublishProgressAsync(stop).ConfigureAwait(false);
        while (true)
        {
            stop.ThrowIfCancellationRequested();
            try
            {
                if (await diloco.SyncAsync(stop).ConfigureAwait(false))
                {
                    Log.CaughtUp(_logger, peer.Round);
                    Volatile.Write(ref _roundHash, peer.ParameterHash);
                    _weights!.Publish(_model!, peer.Round, peer.ParameterHash);
                    continue;
                }
                var report = await diloco.RunRoundAsync(stop, evaluate: true).ConfigureAwait(false);
                DilocoCheckpoint.Save(peer, _model!, CheckpointDirectory, _options.EffectiveModelId);
                Volatile.Write(ref _roundHash, report.ParameterHash);
                var seconds = report.InnerTime.TotalSeconds;
                lock (_losses)
                {
                    _tokensPerSecond = seconds > 0 ? _options.EffectiveInnerSteps * peer.TokensPerStep / seconds : 0;
                    _lastGroupSize = report.GroupSize;
                    _losses.Add(new RoundLoss(peer.Round, report.Loss ?? double.NaN));
                    if (_losses.Count > 1000)
                    {
                        _losses.RemoveAt(0);
                    }
                }
                Log.RoundDone(_logger, peer.Round, report.GroupSize, report.Loss ?? double.NaN, _tokensPerSecond, report.ParameterHash);
                _weights!.Publish(_model!, peer.Round, report.ParameterHash);
            }
            catch (Exception e) when (!stop.IsCancellationRequested && e is SwarmUnavailableException or Grpc.Core.RpcException or IOException or InvalidDataException
                or TimeoutException or HttpRequestException or OperationCanceledException)
            {
                // a peer left mid-round or nobody could hand over the state: the round is retried from its start
                Log.RoundFailed(_logger, e.Message);
                using (var state = peer.SnapshotState())
                {
                    peer.LoadState(state);
                }
                await Task.Delay(TimeSpan.FromSeconds(1), _time, stop).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Without training: every <see cref="NodeOptions.FollowInterval"/>, reads the run's progress and,
    /// when a newer round than the served one exists, downloads its parameters from a peer of that round
    /// (checked against the hash its signed progress names) and serves them.
    /// </summary>
    private async Task FollowAsync(CancellationToken stop)
    {
        var model = _model!;
        var vector = new ParameterVector(model.named_parameters().Select(p => (p.name, p.parameter)));
        using var channels = new PeerChannelPool(AveragingServing.DefaultMaxMessageBytes + (64 << 10), TimeSpan.FromSeconds(5), 16);
        var runId = _options.EffectiveModelId;
        while (true)
        {
            try
            {
                var progress = await Matchmaker.ReadProgressAsync(_node!.Dht, runId, stop).ConfigureAwait(false);
                var valid = progress.Where(p => p.ParameterHash.Length == 64).ToList();
                if (valid.Count > 0 && valid.Max(p => p.Rounds) is var newest && newest > _weights!.ServedRound)
                {
                    var current = valid.Where(p => p.Rounds == newest).GroupBy(p => p.ParameterHash).OrderByDescending(g => g.Count()).First();
                    foreach (var source in current)
                    {
                        try
                        {
                            using var state = await StateTransfer.DownloadAsync(channels.Get(source.Address), runId, vector.LayoutHash, vector.Length, current.Key,
                                TimeSpan.FromMinutes(2), stop).ConfigureAwait(false);
                            vector.Scatter(state.Parameters);
                            Log.Followed(_logger, state.Round, source.PeerId, current.Key[..12]);
                            _weights.Publish(model, state.Round, current.Key);
                            break;
                        }
                        catch (Exception e) when (!stop.IsCancellationRequested && e is Grpc.Core.RpcException or InvalidDataException or IOException or HttpRequestException
                            or OperationCanceledException or TimeoutException)
                        {
                            Log.FollowFailed(_logger, $"{source.PeerId}: {e.Message}");
                        }
                    }
                }
            }
            catch (Exception e) when (!stop.IsCancellationRequested && e is SwarmUnavailableException or Grpc.Core.RpcException or IOException or InvalidDataException
                or HttpRequestException or OperationCanceledException or TimeoutException)
            {
                Log.FollowFailed(_logger, e.Message);
            }
            await Task.Delay(_options.FollowInterval, _time, stop).ConfigureAwait(false);
        }
    }

    /// <summary>Training as it stands now, or null when this node does not train.</summary>
    private TrainingSummary? TrainingNow()
    {
        if (_diloco is not { } diloco)
        {
            return null;
        }
        var peer = diloco.Peer;
        var innerSteps = _options.EffectiveInnerSteps;
        lock (_losses)
        {
            var round = peer.Round;
            var inner = (int)Math.Clamp(peer.InnerStep - (long)round * innerSteps, 0, innerSteps);
            return new TrainingSummary(_options.EffectiveModelId, round, inner, innerSteps, _tokensPerSecond, diloco.BytesSent, diloco.BytesReceived,
                _lastGroupSize, [.. _losses.Where(l => double.IsFinite(l.Loss))])
            {
                ParameterHash = Volatile.Read(ref _roundHash),
            };
        }
    }

    /// <summary>Serving as it stands now, or null when this node does not serve (tokens per second are the status source's to measure).</summary>
    private ServingSummary? ServingNow()
    {
        if (_server is not { } server)
        {
            return null;
        }
        var cache = server.Options.CacheTokens;
        var (start, end) = AnnouncedSpan;
        return new ServingSummary(start, end, (int)(_weights?.ServedRound ?? 0), server.SessionCount, server.TokensServed,
            0, cache - server.FreeCacheTokens, cache)
        {
            ParameterHash = _weights?.ServedHash,
        };
    }
}
