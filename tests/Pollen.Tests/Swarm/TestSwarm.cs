using Pollen.Swarm;
using Pollen.Swarm.Dht;

namespace Pollen.Tests.Swarm;

/// <summary>
/// N in-process swarm peers on 127.0.0.1 with ephemeral ports, each with its own home directory (so a
/// restarted peer keeps its identity), sharing one <see cref="TimeProvider"/>. Peers can be killed
/// (the port closes at once, open calls are aborted) and restarted on the same port when it is free.
/// Reused by every swarm test.
/// </summary>
public sealed class TestSwarm : IAsyncDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "pollen-swarm-" + Guid.NewGuid().ToString("N"));
    private readonly Action<SwarmOptions>? _configure;
    private readonly SwarmNode?[] _nodes;
    private readonly int[] _ports;
    private readonly Random _random;

    private TestSwarm(int count, TimeProvider time, Action<SwarmOptions>? configure, int seed)
    {
        Time = time;
        _configure = configure;
        _nodes = new SwarmNode?[count];
        _ports = new int[count];
        _random = new Random(seed);
    }

    /// <summary>The clock every peer uses.</summary>
    public TimeProvider Time { get; }

    /// <summary>Number of peers, dead or alive.</summary>
    public int Count => _nodes.Length;

    /// <summary>Peer <paramref name="index"/>; throws when it is dead.</summary>
    public SwarmNode this[int index] => _nodes[index] ?? throw new InvalidOperationException($"peer {index} is not running");

    /// <summary>True when peer <paramref name="index"/> is running.</summary>
    public bool IsAlive(int index) => _nodes[index] is not null;

    /// <summary>Indexes of running peers.</summary>
    public IReadOnlyList<int> AliveIndexes => [.. Enumerable.Range(0, Count).Where(IsAlive)];

    /// <summary>The running peers.</summary>
    public IReadOnlyList<SwarmNode> Alive => [.. _nodes.Where(n => n is not null).Select(n => n!)];

    /// <summary>
    /// Starts <paramref name="count"/> peers one after another; peer 0 founds the swarm, each later peer
    /// joins through peer 0 and one random earlier peer.
    /// </summary>
    public static async Task<TestSwarm> StartAsync(int count, TimeProvider? time = null, Action<SwarmOptions>? configure = null, int seed = 1, CancellationToken cancellationToken = default)
    {
        var swarm = new TestSwarm(count, time ?? TimeProvider.System, configure, seed);
        try
        {
            for (var i = 0; i < count; i++)
            {
                await swarm.StartPeerAsync(i, port: 0, cancellationToken);
            }
            return swarm;
        }
        catch
        {
            await swarm.DisposeAsync();
            throw;
        }
    }

    /// <summary>Stops peer <paramref name="index"/> abruptly.</summary>
    public async Task KillAsync(int index)
    {
        var node = this[index];
        _nodes[index] = null;
        await node.DisposeAsync();
    }

    /// <summary>Restarts a killed peer with its identity, on its old port if free, joining through live peers.</summary>
    public async Task<SwarmNode> RestartAsync(int index, CancellationToken cancellationToken = default)
    {
        if (IsAlive(index))
        {
            throw new InvalidOperationException($"peer {index} is running");
        }
        try
        {
            return await StartPeerAsync(index, _ports[index], cancellationToken);
        }
        catch (IOException)
        {
            return await StartPeerAsync(index, port: 0, cancellationToken);
        }
    }

    /// <summary>Peer indexes picked at random (seeded), without repetition, among the running ones.</summary>
    public IReadOnlyList<int> PickAlive(int count) => [.. AliveIndexes.OrderBy(_ => _random.Next()).Take(count)];

    /// <summary>Which running peers hold entries for <paramref name="key"/> in their own store.</summary>
    public IReadOnlyList<int> Holders(string key) =>
        [.. AliveIndexes.Where(i => this[i].Dht.Records.Get(Pollen.Swarm.Identity.DhtId.ForKey(key)).Count > 0)];

    /// <summary>Waits (without sleeping as synchronization: polls a condition) until it holds or the deadline passes.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds:0.#} s waiting for {what}");
            }
            await Task.Delay(10);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_nodes.Where(n => n is not null).Select(n => n!.DisposeAsync().AsTask()));
        Array.Clear(_nodes);
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private async Task<SwarmNode> StartPeerAsync(int index, int port, CancellationToken cancellationToken)
    {
        var options = new SwarmOptions
        {
            Home = Path.Combine(_root, $"peer-{index}"),
            ListenAddress = "127.0.0.1",
            Port = port,
            RpcTimeout = TimeSpan.FromSeconds(5),
            ConnectTimeout = TimeSpan.FromSeconds(2),
        };
        var alive = AliveIndexes;
        if (alive.Count > 0)
        {
            options.InitialPeers.Add(this[alive[0]].Address);
            var other = alive[_random.Next(alive.Count)];
            if (other != alive[0])
            {
                options.InitialPeers.Add(this[other].Address);
            }
        }
        _configure?.Invoke(options);
        var node = await SwarmNode.StartAsync(options, time: Time, cancellationToken: cancellationToken);
        _nodes[index] = node;
        _ports[index] = node.Port;
        return node;
    }
}
