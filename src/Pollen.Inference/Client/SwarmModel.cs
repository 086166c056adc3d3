using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Inference.Protos;
using Pollen.Inference.Routing;
using Pollen.Model;
using Pollen.Model.Config;
using Pollen.Swarm;
using Pollen.Swarm.Transport;

namespace Pollen.Inference.Client;

/// <summary>
/// A causal LM whose embedding and head run here and whose blocks run on servers: each session routes
/// its hidden states through a chain of server spans covering blocks 0..L-1.
/// </summary>
/// <remarks>
/// Servers come from an <see cref="IServerDirectory"/> (the DHT, or a fixed list). Before a server is
/// first used it is asked for its <c>Info</c>: that measures the round trip and checks that it really
/// hosts the announced blocks of a model with the same architecture; a server that fails the check is
/// banned. Routes minimize the estimated time of a step (<see cref="RoutePlanner"/>: round trip per hop
/// plus 1/throughput per block). Round trips are compared in steps of <see cref="LatencyResolution"/>, so
/// noise between equally close servers does not reorder them (ties go to the server listed first). A
/// failed server is banned for a while (<see cref="PeerBans"/>) so every session routes around it. When
/// no usable server hosts some blocks, route finding waits up to
/// <see cref="SwarmModelOptions.MissingBlocksTimeout"/> for one to appear, polling the directory.
/// </remarks>
public sealed class SwarmModel : ICausalLM, IDisposable
{
    /// <summary>Round trips are rounded up to a multiple of this before routes are compared.</summary>
    public static readonly TimeSpan LatencyResolution = TimeSpan.FromMilliseconds(5);

    private readonly IServerDirectory _directory;
    private readonly PeerChannelPool _channels;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _fingerprint;
    private readonly ConcurrentDictionary<string, (TimeSpan Latency, DateTimeOffset Measured)> _probes = new();

    /// <summary>Creates a model over a fixed list of servers.</summary>
    public SwarmModel(ModelEnds ends, IReadOnlyList<ServerSpan> servers, SwarmModelOptions? options = null, TimeProvider? time = null, ILogger<SwarmModel>? logger = null)
        : this(ends, new StaticServerDirectory(servers), options, time, logger)
    {
    }

    /// <summary>Creates a model over the servers <paramref name="directory"/> lists.</summary>
    public SwarmModel(ModelEnds ends, IServerDirectory directory, SwarmModelOptions? options = null, TimeProvider? time = null, ILogger<SwarmModel>? logger = null)
    {
        Options = options ?? new SwarmModelOptions();
        Options.Validate();
        Ends = ends;
        _directory = directory;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger<SwarmModel>.Instance;
        _fingerprint = ends.Config.Fingerprint();
        Bans = new PeerBans(_time, Options.BanDuration, Options.MaxBanDuration);
        _channels = new PeerChannelPool(Options.MaxMessageBytes + (64 << 10), TimeSpan.FromSeconds(5), 256);
        AnswerLanes = new Wire.AnswerLanes(Options.MaxMessageBytes + (64 << 10));
    }

    /// <inheritdoc/>
    public ModelConfig Config => Ends.Config;

    /// <summary>Where the servers are listed.</summary>
    public IServerDirectory Directory => _directory;

    /// <summary>Embedding and head.</summary>
    public ModelEnds Ends { get; }

    /// <summary>The options in effect.</summary>
    public SwarmModelOptions Options { get; }

    /// <summary>Servers that failed recently and are skipped.</summary>
    public PeerBans Bans { get; }

    /// <summary>The route most recently chosen for a whole model or a replaced span (for status and tests).</summary>
    public IReadOnlyList<RouteHop> LastRoute { get; private set; } = [];

    /// <summary>Raised (with a message naming the missing blocks) each time route finding starts waiting for servers.</summary>
    public event Action<string>? WaitingForBlocks;

    internal ILogger Logger => _logger;

    internal Grpc.Net.Client.GrpcChannel Channel(string address) => _channels.Get(address);

    /// <summary>Connections to the first servers' push lanes, on which quiet steps are sent.</summary>
    internal Wire.PushLaneWriters Lanes { get; } = new();

    /// <summary>The connections on which the last servers of this client's routes send back the answers of quiet steps.</summary>
    internal Wire.AnswerLanes AnswerLanes { get; }

    /// <inheritdoc/>
    public IDecodingSession OpenSession(int maxLength) => new SwarmDecodingSession(this, Math.Min(maxLength, Config.MaxPositionEmbeddings));

    /// <summary>
    /// The fastest chain of (server, start, end) covering blocks <paramref name="start"/>..<paramref name="end"/>-1
    /// over usable servers, waiting up to <see cref="SwarmModelOptions.MissingBlocksTimeout"/> for missing blocks.
    /// </summary>
    /// <param name="start">First block.</param>
    /// <param name="end">One past the last block.</param>
    /// <param name="refresh">Ask the directory for a fresh list first (after a failure).</param>
    /// <param name="cancellationToken">Cancels the search and the wait.</param>
    /// <exception cref="SwarmUnavailableException">Some blocks stayed without a usable server; the message names them.</exception>
    public async Task<IReadOnlyList<RouteHop>> FindRouteAsync(int start, int end, bool refresh = false, CancellationToken cancellationToken = default)
    {
        var waitStarted = _time.GetTimestamp();
        while (true)
        {
            var servers = await _directory.GetServersAsync(refresh, cancellationToken).ConfigureAwait(false);
            await ProbeAsync(servers.Where(s => s.Start < end && s.End > start), cancellationToken).ConfigureAwait(false);
            var plan = RoutePlanner.Plan(servers, start, end, s => !Bans.IsBanned(s.Address), Latency);
            if (plan.Hops is { } hops)
            {
                LastRoute = hops;
                return hops;
            }
            var banned = servers.Count(s => Bans.IsBanned(s.Address));
            var message = $"no reachable server hosts block{(plan.Missing.Sum(m => m.End - m.Start) == 1 ? "" : "s")} {plan.DescribeMissing()} "
                + $"({servers.Count} server(s) known from {_directory.Description}{(banned > 0 ? $", {banned} banned after failures" : "")})";
            var waited = _time.GetElapsedTime(waitStarted);
            if (waited >= Options.MissingBlocksTimeout)
            {
                throw new SwarmUnavailableException($"{message}; waited {waited.TotalSeconds:0.#} s. Start a server for them, e.g. "
                    + $"'pollen serve --model DIR --blocks {plan.Missing[0].Start}:{plan.Missing[0].End} --initial-peers …'");
            }
            Log.WaitingForBlocks(_logger, message, Options.MissingBlocksTimeout - waited);
            WaitingForBlocks?.Invoke(message);
            var pause = Options.RetryInterval < Options.MissingBlocksTimeout - waited ? Options.RetryInterval : Options.MissingBlocksTimeout - waited;
            await Task.Delay(pause, _time, cancellationToken).ConfigureAwait(false);
            refresh = true;
        }
    }

    private TimeSpan? Latency(ServerSpan server)
    {
        if (!_probes.TryGetValue(server.Address, out var probe))
        {
            return null;
        }
        var steps = Math.Max(1, Math.Ceiling(probe.Latency / LatencyResolution));
        return LatencyResolution * steps;
    }

    /// <summary>Asks each server not checked within <see cref="SwarmModelOptions.ProbeInterval"/> for its Info, in parallel.</summary>
    private Task ProbeAsync(IEnumerable<ServerSpan> servers, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var due = servers.Where(s => !Bans.IsBanned(s.Address) && (!_probes.TryGetValue(s.Address, out var p) || now - p.Measured > Options.ProbeInterval))
            .DistinctBy(s => s.Address).ToList();
        return Task.WhenAll(due.Select(s => ProbeAsync(s, cancellationToken)));
    }

    private async Task ProbeAsync(ServerSpan server, CancellationToken cancellationToken)
    {
        string? problem;
        var latency = TimeSpan.MaxValue;
        try
        {
            var client = new Blocks.BlocksClient(Channel(server.Address));
            InfoReply info = null!;
            // the first call also pays for the connection (and a fresh server's warm-up): the round trip is the faster of two
            for (var attempt = 0; attempt < 2; attempt++)
            {
                var clock = Stopwatch.StartNew();
                info = await client.InfoAsync(new InfoRequest(), deadline: DateTime.UtcNow + Options.ProbeTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
                latency = clock.Elapsed < latency ? clock.Elapsed : latency;
            }
            problem = info.StartBlock > server.Start || info.EndBlock < server.End ? $"it hosts blocks {info.StartBlock}..{info.EndBlock - 1}, not {server.Start}..{server.End - 1}"
                : info.HiddenSize != Config.HiddenSize ? $"its hidden size is {info.HiddenSize}, not {Config.HiddenSize}"
                : info.ConfigFingerprint.Length > 0 && info.ConfigFingerprint != _fingerprint ? $"it serves another architecture (config {info.ConfigFingerprint}, ours {_fingerprint})"
                : null;
        }
        catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
        {
            problem = $"{e.StatusCode}: {e.Status.Detail}";
        }
        if (problem is null)
        {
            _probes[server.Address] = (latency, _time.GetUtcNow());
            Bans.RecordSuccess(server.Address);
        }
        else
        {
            var ban = Bans.RecordFailure(server.Address);
            Log.ProbeFailed(_logger, server.ToString(), ban, problem);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _channels.Dispose();
        Lanes.Dispose();
        AnswerLanes.Dispose();
        Ends.Dispose();
    }
}
