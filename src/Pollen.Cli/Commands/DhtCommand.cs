using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Pollen.Swarm;
using Pollen.Swarm.Announcements;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen dht</c>: a bootstrap/relay-only swarm peer that serves the DHT until stopped.</summary>
internal static class DhtCommand
{
    /// <summary>How long the node's announcement stays valid without a refresh.</summary>
    private static readonly TimeSpan AnnouncementTtl = TimeSpan.FromMinutes(5);

    public static Command Create()
    {
        var swarm = new SwarmOptionsBinding();
        var verbose = new Option<bool>("--verbose") { Description = "Log DHT traffic (debug level)." };
        var json = CommonOptions.Json();
        var command = new Command("dht", "Run a DHT-only swarm peer (a bootstrap node others join with --initial-peers) until Ctrl+C.");
        foreach (var option in swarm.All)
        {
            command.Options.Add(option);
        }
        command.Options.Add(verbose);
        command.Options.Add(json);
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            var options = swarm.Bind(r);
            using var logging = NodeLogging.Create(r.GetValue(verbose));
            await using var node = await SwarmNode.StartAsync(options, loggerFactory: logging, cancellationToken: ct).ConfigureAwait(false);
            await using var announcer = Announcer.Start(node.Dht, () => new PeerAnnouncement
            {
                PeerId = node.PeerId.ToString(),
                Address = node.Address,
                Version = PeerDirectory.SoftwareVersion,
                Role = "dht",
            }, AnnouncementTtl, TimeProvider.System, logging.CreateLogger("Pollen.Announcer"));
            // announced before the address is printed, so whoever reads it finds this peer listed
            await announcer.FirstAttempt.WaitAsync(ct).ConfigureAwait(false);

            Console.Out.WriteLine($"peer id  {node.PeerId}");
            Console.Out.WriteLine($"address  {node.Address}");
            Console.Out.WriteLine($"join this swarm with: --initial-peers {node.Address}");
            if (r.GetValue(json))
            {
                CommonOptions.PrintJson(new JsonObject { ["peer_id"] = node.PeerId.ToString(), ["address"] = node.Address, ["port"] = node.Port });
            }
            return await CommonOptions.RunUntilStoppedAsync(ct).ConfigureAwait(false);
        }));
        return command;
    }
}
