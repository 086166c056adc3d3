using System.Text.Json.Nodes;
using Pollen.Tests.Model;

namespace Pollen.Tests.Cli;

/// <summary><c>pollen bench inference</c> on a tiny model: one JSON object per scenario, with the fields the benchmark page quotes.</summary>
public sealed class BenchInferenceCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "pollen-bench-" + Guid.NewGuid().ToString("N"));

    public BenchInferenceCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task PrintsSwarmSessionsAndRecoveryScenarios()
    {
        var config = Path.Combine(_dir, "config.json");
        await File.WriteAllTextAsync(config, (ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 }).ToJson(), TestContext.Current.CancellationToken);
        var run = await PollenProcess.RunAsync("bench", "inference", "--config", config, "--servers", "2", "--prompt-tokens", "3", "--tokens", "6",
            "--repeats", "1", "--sessions", "1", "3", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        var results = run.Stdout.Trim().Split('\n').Select(line => JsonNode.Parse(line)!.AsObject()).ToArray();
        Assert.Equal(["inference-swarm", "inference-sessions", "inference-recovery"], results.Select(r => (string)r["scenario"]!));
        foreach (var r in results)
        {
            Assert.Equal(2, (int)r["servers"]!);
            Assert.Equal("0:2,2:4", (string)r["spans"]!);
        }

        var swarm = results[0];
        var local = (double)swarm["local_tokens_per_s"]!;
        var remote = (double)swarm["swarm_tokens_per_s"]!;
        Assert.True(local > 0 && remote > 0);
        Assert.InRange((double)swarm["swarm_ratio"]!, 0.99 * remote / local, 1.01 * remote / local); // one run: its own ratio
        Assert.True((bool)swarm["tokens_match"]!);

        var sessions = results[1];
        Assert.Equal(1.0, (double)sessions["sessions_1_ratio"]!);
        Assert.True((double)sessions["sessions_3_tokens_per_s"]! > 0);
        Assert.Equal(4, (int)sessions["sessions_run"]!); // one repeat of 1 and of 3 sessions
        Assert.Equal((int)sessions["sessions_run"]!, (int)sessions["sessions_matching_local"]!);

        var recovery = results[2];
        Assert.Equal("2:4", (string)recovery["killed_blocks"]!);
        Assert.Equal(3, (int)recovery["kill_after_tokens"]!);
        Assert.True((double)recovery["stall_ms"]! > 0);
        Assert.True((bool)recovery["tokens_match"]!);
    }

    [Fact]
    public async Task MoreServersThanBlocksIsAUsageError()
    {
        var run = await PollenProcess.RunAsync("bench", "inference", "--config", "dev", "--servers", "5");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--servers", run.Stderr);
    }
}
