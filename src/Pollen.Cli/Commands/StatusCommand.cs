using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Pollen.Inference.Routing;
using Pollen.Inference.Server;
using Pollen.Node.Status;
using Pollen.Swarm;
using Pollen.Swarm.Identity;

namespace Pollen.Cli.Commands;

/// <summary>
/// <c>pollen status</c>: joins the swarm briefly as a client (a throwaway identity, nothing announced) and
/// prints what the DHT says: the model's servers and their spans, block coverage, and the training run's
/// progress.
/// </summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var peers = SwarmOptionsBinding.InitialPeersOption();
        var modelId = new Option<string>("--model-id") { Description = "Model id (and training run id) to report on.", DefaultValueFactory = _ => "pollen" };
        var json = new Option<bool>("--json") { Description = "Print the status as one JSON object (the /api/status document) as the last line." };
        var command = new Command("status", "Print the swarm's state: model, peers with their blocks and throughput, block coverage, training progress.")
        {
            peers, modelId, json,
        };
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            var initial = r.GetValue(peers) ?? [];
            if (initial.Length == 0)
            {
                throw new UsageException("--initial-peers host:port is required: any peer of the swarm");
            }
            var id = r.GetValue(modelId)!;
            var options = new SwarmOptions { ListenAddress = "127.0.0.1", ConnectTimeout = TimeSpan.FromSeconds(3) };
            foreach (var p in initial)
            {
                options.InitialPeers.Add(p);
            }
            try
            {
                options.Validate();
                ModelServers.CheckModelId(id);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            using var identity = NodeIdentity.CreateEphemeral();
            await using var node = await SwarmNode.StartAsync(options, identity, cancellationToken: ct).ConfigureAwait(false);
            var status = await ReadAsync(node, id, ct).ConfigureAwait(false);
            Print(status);
            if (r.GetValue(json))
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(status, NodeStatus.Json));
            }
            return 0;
        }));
        return command;
    }

    /// <summary>The swarm's status as the DHT shows it to a client.</summary>
    private static async Task<NodeStatus> ReadAsync(SwarmNode node, string modelId, CancellationToken ct)
    {
        var servers = await ModelServers.ListAsync(node.Dht, modelId, null, ct).ConfigureAwait(false);
        var run = await LiveNodeStatus.ReadRunAsync(node.Dht, modelId, ct).ConfigureAwait(false);
        var now = DateTimeOffset.UtcNow;
        var fingerprint = servers.GroupBy(s => s.ConfigFingerprint).OrderByDescending(g => g.Count()).FirstOrDefault()?.Key ?? "";
        var blocks = servers.Where(s => s.ConfigFingerprint == fingerprint).Select(s => s.EndBlock).DefaultIfEmpty(0).Max();
        return new NodeStatus
        {
            Time = now,
            Node = new NodeSummary(node.PeerId.ToString(), node.Address, null, ["status"], now),
            Model = new ModelSummary(modelId, fingerprint, blocks, 0, ""),
            // an announcement is refreshed every third of its TTL, so it was last seen about TTL before it expires
            Peers = [.. servers.Select(s => new PeerSummary(s.PeerId, s.Address, s.StartBlock, s.EndBlock, s.Throughput,
                s.Expiration - BlockServing.DefaultTtl < now ? s.Expiration - BlockServing.DefaultTtl : now, false))],
            Run = run,
        };
    }

    private static void Print(NodeStatus status)
    {
        var o = Console.Out;
        var m = status.Model;
        o.WriteLine(m.ConfigFingerprint.Length == 0 ? $"model    {m.ModelId}: no server announces it" : $"model    {m.ModelId} (config {m.ConfigFingerprint}, {m.NumBlocks} blocks)");
        if (status.Run is { LivePeers: > 0 } run)
        {
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"training round {run.Round}, {run.Tokens:N0} tokens, {run.LivePeers} live peer(s){(run.ParameterHash is { Length: >= 12 } h ? $", parameters {h[..12]}" : "")}"));
        }
        else
        {
            o.WriteLine($"training no progress entries for run '{status.Run?.RunId}'");
        }
        if (m.NumBlocks > 0)
        {
            var coverage = new int[m.NumBlocks];
            foreach (var p in status.Peers.Where(p => p.EndBlock <= m.NumBlocks))
            {
                for (var b = p.StartBlock; b < p.EndBlock; b++)
                {
                    coverage[b]++;
                }
            }
            o.WriteLine($"coverage {string.Join(" ", coverage.Select((c, b) => $"{b}:{c}"))}   (block:servers){(coverage.Contains(0) ? "  — some blocks have no server" : "")}");
        }
        o.WriteLine($"peers    {status.Peers.Count}");
        foreach (var p in status.Peers)
        {
            var ago = Math.Max(0, (status.Time - p.LastSeen).TotalSeconds);
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {p.PeerId[..Math.Min(12, p.PeerId.Length)]}  {p.Address,-21}  blocks {p.StartBlock}..{p.EndBlock - 1}  {p.Throughput,8:F1} block-steps/s  last seen {ago:F0} s ago"));
        }
    }
}
