using Pollen.Inference.Client;
using Pollen.Inference.Server;
using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using Pollen.Tests.Model.Checkpoints;
using static TorchSharp.torch;

namespace Pollen.Tests.Inference;

/// <summary>
/// Inference tests draw models from torch's global generator and start servers; they run alone so they
/// cannot perturb tests that check seeded determinism (and are not slowed down by them).
/// </summary>
[CollectionDefinition(nameof(InferenceSerial), DisableParallelization = true)]
public sealed class InferenceSerial;

/// <summary>
/// A model saved to a temporary checkpoint, the same model loaded locally as the reference, and block
/// servers on 127.0.0.1 (ephemeral ports), each loading only its span from the checkpoint.
/// </summary>
internal sealed class InferenceSwarm : IAsyncDisposable
{
    private readonly CheckpointTestFiles _files;
    private readonly List<BlockServerHost?> _hosts = [];

    private InferenceSwarm(CheckpointTestFiles files, Transformer local)
    {
        _files = files;
        Local = local;
    }

    /// <summary>The reference model.</summary>
    public Transformer Local { get; }

    /// <summary>The checkpoint directory.</summary>
    public string Directory => _files.Directory;

    /// <summary>The running servers (null once killed).</summary>
    public IReadOnlyList<BlockServerHost?> Hosts => _hosts;

    /// <summary>Every server's address and span, in start order.</summary>
    public IReadOnlyList<ServerSpan> Spans { get; private set; } = [];

    public static async Task<InferenceSwarm> StartAsync(ModelConfig config, IEnumerable<(int Start, int End)> spans, BlockServerOptions? options = null,
        TimeProvider? time = null, int seed = 5, bool pushLanes = true)
    {
        var files = new CheckpointTestFiles();
        manual_seed(seed);
        var local = new Transformer(config);
        local.eval();
        ModelCheckpoint.Save(files.Directory, local);
        var swarm = new InferenceSwarm(files, local);
        var list = new List<ServerSpan>();
        foreach (var (start, end) in spans)
        {
            var server = BlockServer.Load(files.Directory, start, end, options ?? new BlockServerOptions(), time: time);
            var host = await BlockServerHost.StartAsync(server, pushLane: pushLanes);
            swarm._hosts.Add(host);
            list.Add(new ServerSpan(host.Address, start, end));
        }
        swarm.Spans = list;
        return swarm;
    }

    /// <summary>A client over every server.</summary>
    public SwarmModel Client(SwarmModelOptions? options = null) => new(ModelEnds.Load(Directory), Spans, options);

    /// <summary>Stops server <paramref name="index"/> at once: its open streams are aborted.</summary>
    public async Task KillAsync(int index)
    {
        var host = _hosts[index] ?? throw new InvalidOperationException("already killed");
        _hosts[index] = null;
        await host.DisposeAsync();
        host.Server.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < _hosts.Count; i++)
        {
            if (_hosts[i] is not null)
            {
                await KillAsync(i);
            }
        }
        Local.Dispose();
        _files.Dispose();
    }
}
