using System.CommandLine;
using Pollen.Swarm;

namespace Pollen.Cli.Commands;

/// <summary>The swarm flags shared by <c>pollen dht</c> and later node commands, bound onto <see cref="SwarmOptions"/>.</summary>
internal sealed class SwarmOptionsBinding
{
    public Option<string?> Home { get; } = new("--home") { Description = "Node home directory holding the identity key (default ~/.pollen)." };

    public Option<int> Port { get; } = new("--port") { Description = "Swarm port (gRPC over HTTP/2); 0 picks a free one. Use a fixed port for a long-lived bootstrap peer.", DefaultValueFactory = _ => 0 };

    public Option<string> Listen { get; } = new("--listen") { Description = "IP address to bind the swarm port to.", DefaultValueFactory = _ => "0.0.0.0" };

    public Option<string?> AnnounceAddress { get; } = new("--announce-address") { Description = "host:port other peers should dial, when it differs from the listen address (NAT, containers)." };

    public Option<string[]> InitialPeers { get; } = InitialPeersOption();

    public static Option<string[]> InitialPeersOption() => new("--initial-peers")
    {
        Description = "host:port of one or more swarm peers to join through; none founds a new swarm.",
        AllowMultipleArgumentsPerToken = true,
        DefaultValueFactory = _ => [],
    };

    public IEnumerable<Option> All => [Home, Port, Listen, AnnounceAddress, InitialPeers];

    public SwarmOptions Bind(ParseResult r)
    {
        var options = new SwarmOptions { Port = r.GetValue(Port), ListenAddress = r.GetValue(Listen)!, AnnounceAddress = r.GetValue(AnnounceAddress) };
        if (r.GetValue(Home) is { } home)
        {
            options.Home = home;
        }
        foreach (var peer in r.GetValue(InitialPeers) ?? [])
        {
            options.InitialPeers.Add(peer);
        }
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        return options;
    }
}
