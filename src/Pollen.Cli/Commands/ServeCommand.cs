using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Pollen.Inference.Server;
using Pollen.Model.Config;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen serve</c>: hosts a span of a model's blocks for inference until stopped.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint directory (config.json + model.safetensors); only the served blocks are read." };
        var blocks = new Option<string?>("--blocks") { Description = "Blocks to serve as start:end (end exclusive), e.g. 4:8. Default: all blocks." };
        var cacheTokens = new Option<long>("--cache-tokens") { Description = "Cache budget in tokens (sum over sessions of batch × max length).", DefaultValueFactory = _ => new BlockServerOptions().CacheTokens };
        var listen = new Option<string>("--listen") { Description = "Address to listen on.", DefaultValueFactory = _ => "0.0.0.0" };
        var port = new Option<int>("--port") { Description = "Port (0 = any free port).", DefaultValueFactory = _ => 0 };
        var modelId = new Option<string?>("--model-id") { Description = "Name reported to clients (default: the directory name)." };
        var dtype = ModelLoading.DtypeOption();
        var threads = CommonOptions.Threads();
        var verbose = new Option<bool>("--verbose") { Description = "Log requests (debug level)." };
        var json = CommonOptions.Json();
        var command = new Command("serve", "Serve a span of a model's blocks to swarm clients until Ctrl+C.")
        {
            model, blocks, cacheTokens, listen, port, modelId, dtype, threads, verbose, json,
        };
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var directory = r.GetValue(model);
            if (string.IsNullOrWhiteSpace(directory) || !Directory.Exists(directory))
            {
                throw new UsageException("--model DIR is required: an existing checkpoint directory");
            }
            var config = ModelConfig.Load(directory);
            var (start, end) = ParseBlocks(r.GetValue(blocks), config.NumHiddenLayers);
            var options = new BlockServerOptions
            {
                ModelId = r.GetValue(modelId) ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory))),
                CacheTokens = r.GetValue(cacheTokens),
            };
            using var logging = NodeLogging.Create(r.GetValue(verbose));
            using var server = BlockServer.Load(directory, start, end, options, ModelLoading.ParseDtype(r.GetValue(dtype)),
                logger: Microsoft.Extensions.Logging.LoggerFactoryExtensions.CreateLogger<BlockServer>(logging));
            await using var host = await BlockServerHost.StartAsync(server, r.GetValue(listen)!, r.GetValue(port), logging, ct).ConfigureAwait(false);
            Console.Out.WriteLine($"serving  {options.ModelId} blocks {start}..{end - 1}");
            Console.Out.WriteLine($"address  {host.Address}");
            Console.Out.WriteLine($"use it with: {host.Address}@{start}:{end}");
            if (r.GetValue(json))
            {
                CommonOptions.PrintJson(new JsonObject { ["address"] = host.Address, ["start_block"] = start, ["end_block"] = end, ["model_id"] = options.ModelId });
            }
            return await CommonOptions.RunUntilStoppedAsync(ct).ConfigureAwait(false);
        }));
        return command;
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
