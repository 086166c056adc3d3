using System.CommandLine;
using Microsoft.Extensions.Logging;
using Pollen.Inference.Client;
using Pollen.Inference.Routing;
using Pollen.Model;
using Pollen.Model.Tokenizers;
using Pollen.Swarm;
using Pollen.Swarm.Identity;

namespace Pollen.Cli.Commands;

/// <summary>
/// The flags of commands that run a model's blocks on servers (<c>generate</c>, <c>api</c>): find them in
/// the DHT (<c>--initial-peers</c> + <c>--model-id</c>) or take a fixed list (<c>--servers</c>).
/// </summary>
internal sealed class SwarmLoading
{
    public Option<string[]> InitialPeers { get; } = new("--initial-peers")
    {
        Description = "Find the model's block servers in the swarm these peers belong to (host:port of any peer).",
        AllowMultipleArgumentsPerToken = true,
        DefaultValueFactory = _ => [],
    };

    public Option<string[]> Servers { get; } = new("--servers")
    {
        Description = "Instead of the DHT, run the blocks on these block servers (host:port@start:end, end exclusive; see 'pollen serve').",
        AllowMultipleArgumentsPerToken = true,
        DefaultValueFactory = _ => [],
    };

    public Option<string?> ModelId { get; } = new("--model-id") { Description = "Model id the servers announce (default: the --model directory's name)." };

    public Option<string> WireDtype { get; } = new("--wire-dtype")
    {
        Description = "Hidden states on the wire: f32 (exact), f16 or bf16 (half the bytes; outputs differ by ~1e-3).",
        DefaultValueFactory = _ => "f32",
    };

    public Option<double> WaitForBlocks { get; } = new("--wait-for-blocks")
    {
        Description = "Seconds to wait for a server to host blocks nobody serves before failing.",
        DefaultValueFactory = _ => 60,
    };

    public IEnumerable<Option> All => [InitialPeers, Servers, ModelId, WireDtype, WaitForBlocks];

    /// <summary>True when the blocks should run remotely.</summary>
    public bool Requested(ParseResult r) => r.GetValue(InitialPeers) is { Length: > 0 } || r.GetValue(Servers) is { Length: > 0 };

    /// <summary>Opens a swarm model: embedding, head and tokenizer from <paramref name="directory"/>, blocks on servers.</summary>
    public async Task<SwarmClient> OpenAsync(ParseResult r, string? directory, TorchSharp.torch.ScalarType dtype, ILoggerFactory logging, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(directory) || !Directory.Exists(directory))
        {
            throw new UsageException("--model DIR is required with --initial-peers or --servers: the checkpoint the embedding, head and tokenizer are read from (only those tensors are loaded)");
        }
        var peers = r.GetValue(InitialPeers) ?? [];
        var servers = r.GetValue(Servers) ?? [];
        if (peers.Length > 0 && servers.Length > 0)
        {
            throw new UsageException("give either --initial-peers (find servers in the DHT) or --servers (a fixed list), not both");
        }
        var wait = r.GetValue(WaitForBlocks);
        if (!(wait is >= 0 and <= 86400))
        {
            throw new UsageException($"--wait-for-blocks must be 0..86400 seconds, got {wait}");
        }
        var options = new SwarmModelOptions
        {
            WireDtype = r.GetValue(WireDtype) is var wire && wire is "f32" or "float32" or "f16" or "float16" or "bf16" or "bfloat16"
                ? ModelLoading.ParseDtype(wire) : throw new UsageException($"--wire-dtype {wire}: choose f32, f16 or bf16"),
            MissingBlocksTimeout = TimeSpan.FromSeconds(wait),
        };
        var ends = ModelEnds.Load(directory, dtype);
        var tokenizer = ModelLoading.TokenizerFor(directory, ends.Config);
        if (servers.Length > 0)
        {
            List<ServerSpan> spans;
            try
            {
                spans = [.. servers.Select(ServerSpan.Parse)];
            }
            catch (FormatException e)
            {
                ends.Dispose();
                throw new UsageException($"--servers: {e.Message}");
            }
            return new SwarmClient(new SwarmModel(ends, spans, options, logger: logging.CreateLogger<SwarmModel>()), tokenizer, null, null);
        }
        var modelId = r.GetValue(ModelId) ?? ModelLoading.DefaultModelId(directory);
        var swarmOptions = new SwarmOptions { ListenAddress = "0.0.0.0" };
        foreach (var peer in peers)
        {
            swarmOptions.InitialPeers.Add(peer);
        }
        try
        {
            swarmOptions.Validate();
            ModelServers.CheckModelId(modelId);
        }
        catch (ArgumentException e)
        {
            ends.Dispose();
            throw new UsageException(e.Message);
        }
        SwarmNode node;
        try
        {
            // a client has its own throwaway identity: it announces nothing and must not share a server's key
            node = await SwarmNode.StartAsync(swarmOptions, NodeIdentity.CreateEphemeral(), loggerFactory: logging, cancellationToken: ct).ConfigureAwait(false);
        }
        catch
        {
            ends.Dispose();
            throw;
        }
        var directoryOfServers = new DhtServerDirectory(node.Dht, modelId, ends.Config.Fingerprint(), ends.Config.NumHiddenLayers);
        return new SwarmClient(new SwarmModel(ends, directoryOfServers, options, logger: logging.CreateLogger<SwarmModel>()), tokenizer, node, directoryOfServers);
    }
}

/// <summary>A model whose blocks run on servers, with the DHT node that finds them (if any).</summary>
internal sealed class SwarmClient(SwarmModel model, ITokenizer? tokenizer, SwarmNode? node, DhtServerDirectory? directory) : IAsyncDisposable
{
    public SwarmModel Model { get; } = model;

    public ITokenizer? Tokenizer { get; } = tokenizer;

    /// <summary>The DHT node that finds the servers, or null with a fixed list.</summary>
    public SwarmNode? Node => node;

    public async ValueTask DisposeAsync()
    {
        Model.Dispose();
        directory?.Dispose();
        if (node is not null)
        {
            await node.DisposeAsync().ConfigureAwait(false);
            node.Dht.Identity.Dispose(); // the ephemeral key given to it, which the node does not own
        }
    }
}
