using System.Diagnostics;
using System.Text.Json.Nodes;
using Pollen.Tests.Cli;

namespace Pollen.Tests.Training;

/// <summary>
/// <c>pollen train --swarm</c> as three OS processes: one is SIGKILLed mid-run and restarted with the same
/// home and checkpoint directory; the run finishes and every peer ends with the same parameters.
/// </summary>
public sealed class TrainSwarmProcessTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "pollen-train-swarm-" + Guid.NewGuid().ToString("N"));
    private readonly List<Process> _processes = [];
    private readonly Dictionary<Process, (string Seen, Task<string> Remainder)> _stderr = [];

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
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task ThreePeersFinishTheRunThoughOneIsKilledAndRestarted()
    {
        var a = Start("a", null);
        var address = await ReadUntilAsync(a, "join with --initial-peers ", line => line[(line.IndexOf("--initial-peers ", StringComparison.Ordinal) + 16)..].Trim());
        var b = Start("b", address);
        Drain(b, "");
        var c = Start("c", address);
        await ReadUntilAsync(c, "  peers ", _ => ""); // its first completed round
        await Pollen.Tests.Swarm.TestSwarm.WaitUntilAsync(() => File.Exists(Path.Combine(_root, "c", "out", "diloco_state.json")), TimeSpan.FromMinutes(1), "c's first checkpoint");
        c.Kill(); // SIGKILL mid-run
        await c.WaitForExitAsync(TestContext.Current.CancellationToken);
        var restarted = Start("c", address);
        Drain(restarted, "");

        var results = new List<JsonObject>();
        foreach (var p in new[] { a, b, restarted })
        {
            var stdout = await p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            await PollenProcess.WaitAsync(p, TimeSpan.FromMinutes(5));
            Assert.True(p.ExitCode == 0, $"exit {p.ExitCode}: {stdout}\n--- stderr (last 4000 chars) ---\n{await StderrTailAsync(p)}");
            results.Add(JsonNode.Parse(stdout.TrimEnd().Split('\n')[^1])!.AsObject());
        }
        Assert.All(results, r => Assert.Equal(8, (int)r["rounds"]!));
        Assert.Single(results.Select(r => (string)r["parameter_hash"]!).Distinct());
        Assert.All(results.Take(2), r => Assert.True((double)r["val_loss"]! < (double)r["unigram_loss"]!));
    }

    private Process Start(string name, string? join)
    {
        string[] args =
        [
            "train", "--swarm", "--run-id", "proc", "--rounds", "8", "--inner-steps", "20", "--batch-size", "8", "--seq-len", "64", "--corpus-mb", "1",
            "--matchmaking-seconds", "4", "--averaging-timeout", "4", "--listen", "127.0.0.1",
            "--home", Path.Combine(_root, name, "home"), "--out", Path.Combine(_root, name, "out"), "--json",
        ];
        if (join is not null)
        {
            args = [.. args, "--initial-peers", join];
        }
        var process = PollenProcess.Start(args);
        _processes.Add(process);
        return process;
    }

    /// <summary>Keeps reading <paramref name="process"/>'s stderr (after <paramref name="seen"/>) so it never blocks, for failure messages.</summary>
    private void Drain(Process process, string seen) =>
        _stderr[process] = (seen, process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken));

    private async Task<string> StderrTailAsync(Process process)
    {
        if (!_stderr.TryGetValue(process, out var err))
        {
            return "";
        }
        var text = err.Seen + await err.Remainder.WaitAsync(TimeSpan.FromSeconds(10));
        return text[Math.Max(0, text.Length - 4000)..];
    }

    private async Task<string> ReadUntilAsync(Process process, string marker, Func<string, string> take)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(3));
        var seen = new System.Text.StringBuilder();
        // with --json the progress goes to stderr and stdout carries only the result
        while (await process.StandardError.ReadLineAsync(timeout.Token) is { } line)
        {
            seen.AppendLine(line);
            if (line.Contains(marker, StringComparison.Ordinal))
            {
                Drain(process, seen.ToString()); // keep draining
                return take(line);
            }
        }
        throw new InvalidOperationException($"the process exited before printing '{marker}': {seen}");
    }
}
