using System.Diagnostics;
using System.Text.Json.Nodes;
using Pollen.Inference.Client;
using Pollen.Model.Generation;
using Pollen.Tests.Cli;
using Pollen.Tests.Model;

namespace Pollen.Tests.Inference;

/// <summary>Separate <c>pollen serve</c> processes: a generation survives one of them being SIGKILLed.</summary>
[Collection(nameof(InferenceSerial))]
public sealed class ServeProcessTests : IDisposable
{
    private readonly List<Process> _processes = [];

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
    }

    [Fact]
    public async Task GenerationThroughServeProcessesSurvivesASigkilledServer()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await InferenceSwarm.StartAsync(config, []);
        var spans = new List<ServerSpan>();
        foreach (var blocks in new[] { "0:2", "2:4", "0:2" })
        {
            spans.Add(await StartServeAsync(swarm.Directory, blocks));
        }
        var options = new GenerationOptions { MaxNewTokens = 30, StopAtEos = false };
        int[] prompt = [4, 8, 15, 16, 23];
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, prompt, options, TestContext.Current.CancellationToken);

        using var model = new SwarmModel(ModelEnds.Load(swarm.Directory), spans);
        var ids = new List<int>();
        await foreach (var token in TextGenerator.GenerateAsync(model, null, prompt, options, TestContext.Current.CancellationToken))
        {
            ids.Add(token.Id);
            if (ids.Count == 10)
            {
                _processes[0].Kill(); // SIGKILL on Unix: no shutdown code runs
                await _processes[0].WaitForExitAsync(TestContext.Current.CancellationToken);
            }
        }
        Assert.Equal(local.Ids, ids);
        Assert.True(model.Bans.IsBanned(spans[0].Address));
        Assert.False(_processes[1].HasExited);
        Assert.False(_processes[2].HasExited);

        // the command line through the surviving servers
        var cli = await PollenProcess.RunAsync("generate", "--model", swarm.Directory, "--servers", spans[2].ToString(), spans[1].ToString(),
            "--prompt-ids", string.Join(',', prompt), "--temperature", "0", "--max-new-tokens", "30", "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var localDefaults = await TextGenerator.GenerateToEndAsync(swarm.Local, null, prompt, new GenerationOptions { MaxNewTokens = 30 }, TestContext.Current.CancellationToken);
        Assert.Equal(localDefaults.Ids, cli.Json["ids"]!.AsArray().Select(i => (int)i!));
    }

    private async Task<ServerSpan> StartServeAsync(string directory, string blocks)
    {
        var process = PollenProcess.Start("serve", "--model", directory, "--blocks", blocks, "--listen", "127.0.0.1", "--port", "0", "--json");
        _processes.Add(process);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith('{'))
            {
                var json = JsonNode.Parse(line)!.AsObject();
                return new ServerSpan((string)json["address"]!, (int)json["start_block"]!, (int)json["end_block"]!);
            }
        }
        throw new InvalidOperationException($"pollen serve --blocks {blocks} exited: {await process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken)}");
    }
}
