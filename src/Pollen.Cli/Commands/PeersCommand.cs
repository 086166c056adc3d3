using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Swarm;
using Pollen.Swarm.Announcements;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Identity;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen peers</c>: joins as a client (serving nothing) and lists the live peers' announcements.</summary>
internal static class PeersCommand
{
    public static Command Create()
    {
        var initialPeers = SwarmOptionsBinding.InitialPeersOption();
        var timeout = new Option<double>("--timeout") { Description = "Give up after this many seconds.", DefaultValueFactory = _ => 20 };
        var json = CommonOptions.Json();
        var command = new Command("peers", "List the live peers of a swarm and what they announce.") { initialPeers, timeout, json };
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            var options = new SwarmOptions();
            foreach (var peer in r.GetValue(initialPeers) ?? [])
            {
                options.InitialPeers.Add(peer);
            }
            if (options.InitialPeers.Count == 0)
            {
                throw new UsageException("--initial-peers host:port is required: the address a running 'pollen dht' or node printed");
            }
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(TimeSpan.FromSeconds(r.GetValue(timeout)));

            // a client: an ephemeral identity and no address, so peers answer it without adding it to their tables
            using var identity = NodeIdentity.CreateEphemeral();
            await using var client = new DhtNode(identity, options, TimeProvider.System, NullLogger<DhtNode>.Instance);
            IReadOnlyList<PeerAnnouncement> peers;
            try
            {
                await client.JoinAsync([.. options.InitialPeers], deadline.Token).ConfigureAwait(false);
                peers = await PeerDirectory.ListAsync(client, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new SwarmUnavailableException($"the swarm did not answer within {r.GetValue(timeout)} s; check --initial-peers or raise --timeout");
            }

            var now = DateTimeOffset.UtcNow;
            Console.Out.WriteLine($"{peers.Count} live peer(s)");
            foreach (var p in peers)
            {
                var serves = p.Serves.Count == 0 ? "-" : string.Join(",", p.Serves);
                var expires = (p.Expiration - now).TotalSeconds;
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{p.PeerId[..10]}  {p.Address,-21}  {p.Role,-6}  v{p.Version}  serves {serves}  (expires in {expires:F0} s)"));
            }
            if (r.GetValue(json))
            {
                var list = new JsonArray();
                foreach (var p in peers)
                {
                    list.Add(new JsonObject
                    {
                        ["peer_id"] = p.PeerId,
                        ["address"] = p.Address,
                        ["role"] = p.Role,
                        ["version"] = p.Version,
                        ["serves"] = new JsonArray([.. p.Serves.Select(s => (JsonNode)s)]),
                        ["throughput_tokens_per_s"] = p.ThroughputTokensPerSecond,
                        ["free_memory_bytes"] = p.FreeMemoryBytes,
                        ["expires_at"] = p.Expiration.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
                    });
                }
                CommonOptions.PrintJson(new JsonObject { ["count"] = peers.Count, ["peers"] = list });
            }
            return 0;
        }));
        return command;
    }
}
