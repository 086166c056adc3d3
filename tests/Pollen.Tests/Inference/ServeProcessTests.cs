using System.Diagnostics;
using System.Text.Json.Nodes;
using Pollen.Inference.Client;
using Pollen.Inference.Routing;
using Pollen.Model.Generation;
using Pollen.Swarm;
using Pollen.Swarm.Identity;
using Pollen.Tests.Cli;
using Pollen.Tests.Model;

namespace Pollen.Tests.Inference;

/// <summary>
/// Separate <c>pollen serve</c> processes that choose their blocks from the DHT (<c>--num-blocks</c>) fill
/// a model in; a 200-token generation survives the server it is using being SIGKILLed, and
/// <c>pollen generate --initial-peers</c> finds the survivors.
/// </summary>
[Collection(nameof(InferenceSerial))]
public sealed class ServeProcessTests : IDisposable
{
    private readonly List<Process> _processes = [];
    private readonly string _homes = Path.Combine(Path.GetTempPath(), "pollen-serve-tests-" + Guid.NewGuid().ToString("N"));

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
            }
            p.Dispose();
        }
        if (Directory.Exists(_homes))
        {
            Directory.Delete(_homes, recursive: true);
        }
    }

    [Fact]
    public async Task ServersFillTheModelInAndAGenerationSurvivesOneBeingSigkilled()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4, MaxPositionEmbeddings = 256 };
        await using var swarm = await InferenceSwarm.StartAsync(config, []);
        var first = await StartServeAsync(swarm.Directory, null, "--num-blocks", "2");
        var second = await StartServeAsync(swarm.Directory, first.Address, "--num-blocks", "2");
        var third = await StartServeAsync(swarm.Directory, first.Address, "--num-blocks", "2");
        // each chose the blocks served by the fewest peers at the time it joined
        Assert.Equal([(0, 2), (2, 4), (0, 2)], new[] { first, second, third }.Select(s => (s.Start, s.End)));

        var options = new GenerationOptions { MaxNewTokens = 200, StopAtEos = false };
        int[] prompt = [4, 8, 15, 16, 23];
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, prompt, options, Ct);

        var clientOptions = new SwarmOptions { ListenAddress = "127.0.0.1" };
        clientOptions.InitialPeers.Add(second.Address);
        using var identity = NodeIdentity.CreateEphemeral();
        await using var node = await SwarmNode.StartAsync(clientOptions, identity, cancellationToken: Ct);
        var ends = ModelEnds.Load(swarm.Directory);
        using var directory = new DhtServerDirectory(node.Dht, Path.GetFileName(swarm.Directory), ends.Config.Fingerprint(), 4);
        using var model = new SwarmModel(ends, directory);
        var ids = new List<int>();
        string? killed = null;
        await foreach (var token in TextGenerator.GenerateAsync(model, null, prompt, options, Ct))
        {
            ids.Add(token.Id);
            if (ids.Count == 100)
            {
                // SIGKILL (no shutdown code runs) the server running blocks 0..1 for this generation
                killed = model.LastRoute[0].Server.Address;
                var victim = _processes[killed == first.Address ? 0 : 2];
                victim.Kill();
                await victim.WaitForExitAsync(Ct);
            }
        }
        Assert.Equal(local.Ids, ids);
        Assert.True(model.Bans.IsBanned(killed!));
        Assert.NotEqual(killed, model.LastRoute[0].Server.Address);

        // the command line finds the survivors through any of them
        var survivor = killed == first.Address ? third : first;
        var cli = await PollenProcess.RunAsync("generate", "--model", swarm.Directory, "--initial-peers", survivor.Address,
            "--prompt-ids", string.Join(',', prompt), "--temperature", "0", "--max-new-tokens", "30", "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var localDefaults = await TextGenerator.GenerateToEndAsync(swarm.Local, null, prompt, new GenerationOptions { MaxNewTokens = 30 }, Ct);
        Assert.Equal(localDefaults.Ids, cli.Json["ids"]!.AsArray().Select(i => (int)i!));
    }

    [Fact]
    public async Task GenerateNamesTheMissingBlocksWhenNoServerComes()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await InferenceSwarm.StartAsync(config, []);
        var server = await StartServeAsync(swarm.Directory, null, "--blocks", "0:3");
        var cli = await PollenProcess.RunAsync("generate", "--model", swarm.Directory, "--initial-peers", server.Address,
            "--prompt-ids", "1,2,3", "--max-new-tokens", "5", "--wait-for-blocks", "1");
        Assert.Equal(1, cli.ExitCode);
        Assert.Contains("block 3", cli.Stderr, StringComparison.Ordinal);
        Assert.Contains("--blocks 3:4", cli.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ResidentMemoryStaysFlatAcross1000Sessions()
    {
        var config = ModelTestConfigs.Tiny() with { HiddenSize = 256, HeadDim = 64, NumAttentionHeads = 4, NumKeyValueHeads = 4, IntermediateSize = 512, NumHiddenLayers = 2, MaxPositionEmbeddings = 256 };
        await using var swarm = await InferenceSwarm.StartAsync(config, []);
        var server = await StartServeAsync(swarm.Directory, null, "--blocks", "0:2", "--cache-tokens", "4096");
        var pid = _processes[0].Id;
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress("http://" + server.Address);
        var options = new SwarmModelOptions();
        // each session: open for 256 tokens, a 32-token prefill, 3 one-token steps, close — 4 at a time
        var prefill = (Hidden: Pollen.Inference.Wire.TensorWire.Encode(TorchSharp.torch.randn(1, 32, config.HiddenSize) * 0.1),
            Positions: Pollen.Inference.Wire.TensorWire.Encode(Pollen.Model.Llama.Transformer.DefaultPositions(1, 32).contiguous()));
        var steps = Enumerable.Range(32, 3).Select(p => (Hidden: Pollen.Inference.Wire.TensorWire.Encode(TorchSharp.torch.randn(1, 1, config.HiddenSize) * 0.1),
            Positions: Pollen.Inference.Wire.TensorWire.Encode(Pollen.Model.Llama.Transformer.DefaultPositions(1, 1, p).contiguous()))).ToList();
        async Task RunSessionsAsync(int count) => await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = Ct }, async (_, ct) =>
        {
            await using var span = await RemoteSpan.OpenAsync(channel, server, 0, 2, 256, 1, options, ct);
            await span.StepAsync(prefill.Hidden, prefill.Positions, ct);
            foreach (var (hidden, positions) in steps)
            {
                await span.StepAsync(hidden, positions, ct);
            }
        });
        // warm-up: JIT, GC heap, and the allocator arenas of the threads that come to run steps (resident
        // memory climbs for the first few hundred sessions, then levels off: +1 MiB per 1000 after 2000)
        await RunSessionsAsync(500);
        var before = ResidentBytes(pid);
        await RunSessionsAsync(1000);
        var after = ResidentBytes(pid);
        Assert.True(after <= before * 1.10, $"resident memory grew from {before >> 20} MiB to {after >> 20} MiB over 1000 sessions");
        // every cache was given back
        var client = new Pollen.Inference.Protos.Blocks.BlocksClient(channel);
        await Pollen.Tests.Swarm.TestSwarm.WaitUntilAsync(() =>
        {
            var info = client.Info(new Pollen.Inference.Protos.InfoRequest(), cancellationToken: Ct);
            return info.FreeCacheTokens == info.MaxCacheTokens;
        }, TimeSpan.FromSeconds(10), "all cache tokens free");
        TestContext.Current.TestOutputHelper?.WriteLine($"resident memory: {before >> 20} MiB after 500 sessions, {after >> 20} MiB after 1500");
    }

    private static long ResidentBytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    private async Task<ServerSpan> StartServeAsync(string directory, string? join, params string[] blocks)
    {
        string[] args = ["serve", "--model", directory, .. blocks, "--listen", "127.0.0.1", "--home", Path.Combine(_homes, $"server-{_processes.Count}"), "--json"];
        if (join is not null)
        {
            args = [.. args, "--initial-peers", join];
        }
        var process = PollenProcess.Start(args);
        _processes.Add(process);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith('{'))
            {
                var json = JsonNode.Parse(line)!.AsObject();
                return new ServerSpan((string)json["address"]!, (int)json["start_block"]!, (int)json["end_block"]!);
            }
        }
        throw new InvalidOperationException($"pollen serve {string.Join(' ', blocks)} exited: {await process.StandardError.ReadToEndAsync(Ct)}");
    }
}
