using Pollen.Inference.Client;
using Pollen.Inference.Server;
using Pollen.Model.Checkpoints;
using Pollen.Model.Llama;

namespace Pollen.Bench.Inference;

/// <summary>
/// A model saved to a temporary checkpoint and block servers on 127.0.0.1 (real gRPC over Kestrel, ephemeral
/// ports), each loading only its span from the checkpoint — what <c>pollen serve</c> does, in one process.
/// </summary>
internal sealed class BenchSwarm : IAsyncDisposable
{
    private readonly List<BlockServerHost?> _hosts = [];
    private readonly BlockServerOptions _options;

    private BenchSwarm(string directory, BlockServerOptions options)
    {
        Directory = directory;
        _options = options;
    }

    /// <summary>The checkpoint directory.</summary>
    public string Directory { get; }

    /// <summary>Servers started so far (null once killed).</summary>
    public IReadOnlyList<BlockServerHost?> Hosts => _hosts;

    /// <summary>Saves <paramref name="model"/> to a temporary directory.</summary>
    public static BenchSwarm Create(Transformer model, BlockServerOptions options)
    {
        var directory = Path.Combine(Path.GetTempPath(), "pollen-bench-inference-" + Guid.NewGuid().ToString("N"));
        ModelCheckpoint.Save(directory, model);
        return new BenchSwarm(directory, options);
    }

    /// <summary>Splits <paramref name="blocks"/> into <paramref name="parts"/> contiguous spans of near-equal length.</summary>
    public static IReadOnlyList<(int Start, int End)> Split(int blocks, int parts) =>
        [.. Enumerable.Range(0, parts).Select(i => (blocks * i / parts, blocks * (i + 1) / parts))];

    /// <summary>Starts a server for blocks <paramref name="start"/>..<paramref name="end"/>-1; returns its index and span.</summary>
    public async Task<(int Index, ServerSpan Span)> StartAsync(int start, int end, CancellationToken cancellationToken)
    {
        var server = BlockServer.Load(Directory, start, end, _options);
        try
        {
            var host = await BlockServerHost.StartAsync(server, cancellationToken: cancellationToken).ConfigureAwait(false);
            _hosts.Add(host);
            return (_hosts.Count - 1, new ServerSpan(host.Address, start, end));
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>A client over <paramref name="servers"/>, with its own embedding and head loaded from the checkpoint.</summary>
    public SwarmModel Client(IReadOnlyList<ServerSpan> servers, SwarmModelOptions? options = null) =>
        new(ModelEnds.Load(Directory), servers, options);

    /// <summary>A client over whatever <paramref name="directory"/> lists, with its own embedding and head.</summary>
    public SwarmModel Client(Pollen.Inference.Routing.IServerDirectory directory, SwarmModelOptions? options = null) =>
        new(ModelEnds.Load(Directory), directory, options);

    /// <summary>Stops server <paramref name="index"/> at once, as a crash would: its open streams are aborted.</summary>
    public async Task KillAsync(int index)
    {
        var host = _hosts[index] ?? throw new InvalidOperationException($"server {index} is already stopped");
        _hosts[index] = null;
        await host.DisposeAsync().ConfigureAwait(false);
        host.Server.Dispose();
    }

    /// <summary>How the servers store their linear weights.</summary>
    public WeightLayout Layout => _hosts.FirstOrDefault(h => h is not null)?.Server.Layout ?? WeightLayout.RowMajor;

    /// <summary>Batched forwards (more than one session at once) over all servers started.</summary>
    public long BatchedSteps => _hosts.Sum(h => h?.Server.BatchedSteps ?? 0);

    /// <summary>Steps the servers pushed on to the next server of a route.</summary>
    public long StepsPushed => _hosts.Sum(h => h?.Server.StepsPushed ?? 0);

    /// <summary>Messages those pushes took (a batched forward's outputs for one next server share one).</summary>
    public long PushMessages => _hosts.Sum(h => h?.Server.PushMessages ?? 0);

    /// <summary>Answers sent back to the client on its push-lane connections, over all servers.</summary>
    public long LaneAnswers => _hosts.Sum(h => h?.Server.LaneAnswers ?? 0);

    /// <summary>Times the servers moved the caches of sessions stepping together into one buffer.</summary>
    public long SharedCaches => _hosts.Sum(h => h?.Server.SharedCaches ?? 0);

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < _hosts.Count; i++)
        {
            if (_hosts[i] is not null)
            {
                await KillAsync(i).ConfigureAwait(false);
            }
        }
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // a temporary directory left behind is harmless
        }
    }
}
