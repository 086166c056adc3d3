using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Inference.Client;
using Pollen.Inference.Routing;
using Pollen.Inference.Server;
using Pollen.Model.Config;
using Pollen.Swarm;
using Pollen.Swarm.Announcements;
using Pollen.Tests.Swarm;

namespace Pollen.Tests.Inference;

/// <summary>
/// A model checkpoint, a one-peer DHT to join through, and block servers that are full swarm peers: each
/// serves its span on its own swarm port and announces it in the DHT, as <c>pollen serve</c> does.
/// </summary>
internal sealed class DhtInferenceSwarm : IAsyncDisposable
{
    public const string ModelId = "test-model";

    private readonly List<ServingPeer> _servers = [];
    private readonly List<IAsyncDisposable> _clients = [];

    private DhtInferenceSwarm(InferenceSwarm model, TestSwarm dht)
    {
        Model = model;
        Dht = dht;
    }

    /// <summary>The checkpoint and the local reference model.</summary>
    public InferenceSwarm Model { get; }

    /// <summary>The bootstrap peer(s).</summary>
    public TestSwarm Dht { get; }

    /// <summary>Servers started so far (killed ones included).</summary>
    public IReadOnlyList<ServingPeer> Servers => _servers;

    public static async Task<DhtInferenceSwarm> StartAsync(ModelConfig config, params (int Start, int End)[] spans)
    {
        var model = await InferenceSwarm.StartAsync(config, []);
        var dht = await TestSwarm.StartAsync(1, cancellationToken: TestContext.Current.CancellationToken);
        var swarm = new DhtInferenceSwarm(model, dht);
        foreach (var (start, end) in spans)
        {
            await swarm.AddServerAsync(start, end);
        }
        return swarm;
    }

    /// <summary>Starts a server for blocks start..end-1 of <paramref name="directory"/> (default: the swarm's checkpoint) and waits until it is announced.</summary>
    public async Task<ServingPeer> AddServerAsync(int start, int end, string? directory = null, double throughput = 1000)
    {
        var slot = new BlockServing.Slot();
        var options = new SwarmOptions { Home = Path.Combine(Path.GetTempPath(), "unused"), ListenAddress = "127.0.0.1" };
        options.InitialPeers.Add(Dht[0].Address);
        var identity = Pollen.Swarm.Identity.NodeIdentity.CreateEphemeral();
        var server = BlockServer.Load(directory ?? Model.Directory, start, end, new BlockServerOptions { ModelId = ModelId });
        var node = await SwarmNode.StartAsync(options, identity, services: BlockServing.Services(slot, server.Options.MaxMessageBytes),
            cancellationToken: TestContext.Current.CancellationToken);
        slot.Server = server;
        var announcer = BlockServing.StartAnnouncing(node.Dht, server, throughput, TimeSpan.FromSeconds(30), TimeProvider.System, NullLogger.Instance);
        await announcer.FirstAttempt.WaitAsync(TestContext.Current.CancellationToken);
        var peer = new ServingPeer(node, server, announcer, identity);
        _servers.Add(peer);
        return peer;
    }

    /// <summary>A client that finds the servers in the DHT through its own (ephemeral) peer.</summary>
    public async Task<SwarmModel> ClientAsync(SwarmModelOptions? options = null)
    {
        var swarmOptions = new SwarmOptions { Home = Path.Combine(Path.GetTempPath(), "unused"), ListenAddress = "127.0.0.1" };
        swarmOptions.InitialPeers.Add(Dht[0].Address);
        var identity = Pollen.Swarm.Identity.NodeIdentity.CreateEphemeral();
        var node = await SwarmNode.StartAsync(swarmOptions, identity, cancellationToken: TestContext.Current.CancellationToken);
        var ends = ModelEnds.Load(Model.Directory);
        var directory = new DhtServerDirectory(node.Dht, ModelId, ends.Config.Fingerprint(), ends.Config.NumHiddenLayers, cacheFor: TimeSpan.Zero);
        _clients.Add(new ClientPeer(node, identity, directory));
        return new SwarmModel(ends, directory, options);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var server in _servers)
        {
            await server.KillAsync();
        }
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }
        await Dht.DisposeAsync();
        await Model.DisposeAsync();
    }

    private sealed class ClientPeer(SwarmNode node, Pollen.Swarm.Identity.NodeIdentity identity, DhtServerDirectory directory) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await node.DisposeAsync();
            identity.Dispose();
            directory.Dispose();
        }
    }
}

/// <summary>A block server on its own swarm peer.</summary>
internal sealed class ServingPeer(SwarmNode node, BlockServer server, Announcer announcer, Pollen.Swarm.Identity.NodeIdentity identity)
{
    private bool _killed;

    public SwarmNode Node { get; } = node;

    public BlockServer Server { get; } = server;

    public string Address => Node.Address;

    /// <summary>Stops at once, like a process that dies: no more announcements, open streams aborted.</summary>
    public async Task KillAsync()
    {
        if (_killed)
        {
            return;
        }
        _killed = true;
        await announcer.DisposeAsync();
        await Node.DisposeAsync();
        Server.Dispose();
        identity.Dispose();
    }
}
