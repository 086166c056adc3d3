using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Pollen.Inference.Routing;
using Pollen.Inference.Server;
using Pollen.Model.Config;
using Pollen.Swarm;

namespace Pollen.Cli.Commands;

/// <summary>
/// <c>pollen serve</c>: joins (or founds) a swarm and hosts a span of a model's blocks on the swarm port,
/// announced in the DHT so clients route through it, until stopped.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint directory (config.json + model.safetensors); only the served blocks are read." };
        var blocks = new Option<string?>("--blocks") { Description = "Blocks to serve as start:end (end exclusive), e.g. 4:8." };
        var numBlocks = new Option<int?>("--num-blocks") { Description = "Serve this many consecutive blocks, choosing those served by the fewest peers in the swarm. Default (with neither option): all blocks." };
        var cacheTokens = new Option<long>("--cache-tokens") { Description = "Cache budget in tokens (sum over sessions of batch × max length).", DefaultValueFactory = _ => new BlockServerOptions().CacheTokens };
        var modelId = new Option<string?>("--model-id") { Description = "Model id announced to clients (default: the directory name)." };
        var dtype = ModelLoading.DtypeOption();
        var threads = CommonOptions.Threads();
        var pushPort = new Option<int>("--push-port")
        {
            Description = "Port on which the previous servers of routes push hidden states (TCP, next to --port); 0 picks a free one, -1 turns it off (pushes then come over --port).",
            DefaultValueFactory = _ => 0,
        };
        var verbose = new Option<bool>("--verbose") { Description = "Log requests (debug level)." };
        var json = CommonOptions.Json();
        var swarm = new SwarmOptionsBinding();
        var command = new Command("serve", "Serve a span of a model's blocks to swarm clients, announced in the DHT, until Ctrl+C.")
        {
            model, blocks, numBlocks, cacheTokens, modelId, dtype, threads, pushPort, verbose, json,
        };
        foreach (var option in swarm.All)
        {
            command.Options.Add(option);
        }
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var directory = r.GetValue(model);
            if (string.IsNullOrWhiteSpace(directory) || !Directory.Exists(directory))
            {
                throw new UsageException("--model DIR is required: an existing checkpoint directory");
            }
            var config = ModelConfig.Load(directory);
            var options = new BlockServerOptions
            {
                ModelId = r.GetValue(modelId) ?? ModelLoading.DefaultModelId(directory),
                CacheTokens = r.GetValue(cacheTokens),
            };
            try
            {
                options.Validate();
                ModelServers.CheckModelId(options.ModelId);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            if (r.GetValue(pushPort) is < -1 or > 65535)
            {
                throw new UsageException($"--push-port must be 0..65535, or -1 for none; got {r.GetValue(pushPort)}");
            }
            if (r.GetValue(blocks) is not null && r.GetValue(numBlocks) is not null)
            {
                throw new UsageException("give --blocks start:end or --num-blocks N, not both");
            }
            var fixedSpan = r.GetValue(numBlocks) is null ? ParseBlocks(r.GetValue(blocks), config.NumHiddenLayers) : ((int, int)?)null;
            var swarmOptions = swarm.Bind(r);
            using var logging = NodeLogging.Create(r.GetValue(verbose));
            var logger = logging.CreateLogger("Pollen.Serve");

            var slot = new BlockServing.Slot();
            await using var node = await SwarmNode.StartAsync(swarmOptions, loggerFactory: logging, services: BlockServing.Services(slot, options.MaxMessageBytes), cancellationToken: ct)
                .ConfigureAwait(false);
            var (start, end) = fixedSpan ?? await ChooseSpanAsync(node, options.ModelId, config, r.GetValue(numBlocks)!.Value, logger, ct).ConfigureAwait(false);
            using var server = BlockServer.Load(directory, start, end, options, ModelLoading.ParseDtype(r.GetValue(dtype)), logger: logging.CreateLogger<BlockServer>());
            using var lane = ListenForPushes(server, swarmOptions.ListenAddress, r.GetValue(pushPort));
            var throughput = await server.MeasureThroughputAsync().ConfigureAwait(false);
            slot.Server = server;
            await using var announcer = BlockServing.StartAnnouncing(node.Dht, server, throughput, BlockServing.DefaultTtl, TimeProvider.System, logging.CreateLogger("Pollen.Announcer"));
            // announced before the address is printed, so a client started after it finds this server
            await announcer.FirstAttempt.WaitAsync(ct).ConfigureAwait(false);

            Console.Out.WriteLine($"serving  {options.ModelId} blocks {start}..{end - 1} ({throughput:0} block-steps/s)");
            Console.Out.WriteLine($"peer id  {node.PeerId}");
            Console.Out.WriteLine($"address  {node.Address}" + (server.PushPort > 0 ? $" (push lane on port {server.PushPort})" : ""));
            Console.Out.WriteLine($"use it with: --initial-peers {node.Address} --model-id {options.ModelId}   (or --servers {node.Address}@{start}:{end})");
            if (r.GetValue(json))
            {
                CommonOptions.PrintJson(new JsonObject
                {
                    ["address"] = node.Address,
                    ["peer_id"] = node.PeerId.ToString(),
                    ["start_block"] = start,
                    ["end_block"] = end,
                    ["model_id"] = options.ModelId,
                    ["throughput"] = Math.Round(throughput, 1),
                    ["push_port"] = server.PushPort,
                });
            }
            var code = await CommonOptions.RunUntilStoppedAsync(ct).ConfigureAwait(false);
            slot.Server = null; // new calls are refused while the open ones end with the host
            return code;
        }));
        return command;
    }

    /// <summary>The push lane on <paramref name="port"/> (0: any free port), or none for -1.</summary>
    private static IDisposable? ListenForPushes(BlockServer server, string listenAddress, int port)
    {
        try
        {
            return port < 0 ? null : server.ListenForPushes(listenAddress, port);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new UsageException($"--push-port {port}: cannot listen on {listenAddress}:{port} ({e.Message}); pick another port, 0 for any free one, or -1 for none");
        }
    }

    /// <summary>Blocks served by the fewest peers, from the model's announcements in the DHT.</summary>
    private static async Task<(int Start, int End)> ChooseSpanAsync(SwarmNode node, string modelId, ModelConfig config, int count, ILogger logger, CancellationToken ct)
    {
        if (count < 1 || count > config.NumHiddenLayers)
        {
            throw new UsageException($"--num-blocks must be 1..{config.NumHiddenLayers} (the model has {config.NumHiddenLayers} blocks), got {count}");
        }
        var fingerprint = config.Fingerprint();
        var servers = await ModelServers.ListAsync(node.Dht, modelId, config.NumHiddenLayers, ct).ConfigureAwait(false);
        var same = servers.Where(s => s.ConfigFingerprint == fingerprint).ToList();
        if (same.Count < servers.Count)
        {
            throw new UsageException($"the swarm serves a model '{modelId}' with another architecture (config {servers.First(s => s.ConfigFingerprint != fingerprint).ConfigFingerprint}, "
                + $"this checkpoint {fingerprint}); use another --model-id");
        }
        var span = SpanChooser.LeastServed(same.Select(s => s.OwnSpan), config.NumHiddenLayers, count);
        Log.ChoseSpan(logger, span.Start, span.End - 1, same.Count);
        return span;
    }

    /// <summary>Parses "start:end" (end exclusive) against the model's block count.</summary>
    internal static (int Start, int End) ParseBlocks(string? text, int blockCount)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return (0, blockCount);
        }
        var parts = text.Split(':');
        if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out var start) || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out var end)
            || start < 0 || end > blockCount || start >= end)
        {
            throw new UsageException($"--blocks {text}: give start:end with 0 <= start < end <= {blockCount} (end exclusive), e.g. 0:{blockCount}");
        }
        return (start, end);
    }
}
