using System.Diagnostics;
using Pollen.Tests.Cli;

namespace Pollen.Tests.Node;

/// <summary><c>pollen node</c> and <c>pollen status</c> as OS processes: start-up failures are quick, clear and non-zero.</summary>
public sealed class NodeCliTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "pollen-node-cli-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task AnUnreachableInitialPeerFailsClearlyAfterBoundedRetries()
    {
        // port 1 on loopback: nothing listens, the connection is refused at once
        var clock = Stopwatch.StartNew();
        var result = await PollenProcess.RunAsync("node", "--dev", "--home", Path.Combine(_root, "a"), "--listen", "127.0.0.1", "--http-port", "0",
            "--no-dashboard", "--initial-peers", "127.0.0.1:1");
        clock.Stop();
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("127.0.0.1:1", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("could not join the swarm after 3 attempts", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("attempt 1 of 3", result.Stderr, StringComparison.Ordinal); // progress while retrying
        Assert.Contains("attempt 2 of 3", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal); // no stack trace
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task AnInvalidOptionFailsAtStartUpNamingIt()
    {
        var result = await PollenProcess.RunAsync("node", "--home", Path.Combine(_root, "a"), "--http-port", "70000");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--http-port", result.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_root, "a", "node")));
    }

    [Fact]
    public async Task ResetWithoutYesOnARedirectedStdinRefusesAndKeepsTheState()
    {
        var checkpoint = Path.Combine(_root, "a", "node", "checkpoint");
        Directory.CreateDirectory(checkpoint);
        File.WriteAllText(Path.Combine(checkpoint, "model.safetensors"), "weights");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "pollen.dll"), "node", "--dev", "--reset", "--home", Path.Combine(_root, "a"), "--no-dashboard", "--threads", "1" })
        {
            start.ArgumentList.Add(a);
        }
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        _ = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        await PollenProcess.WaitAsync(process, TimeSpan.FromMinutes(1));
        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains("--yes", await stderr, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(checkpoint, "model.safetensors")));
    }

    [Fact]
    public async Task StatusWithAnUnreachablePeerFailsClearly()
    {
        var result = await PollenProcess.RunAsync(["status", "--initial-peers", "127.0.0.1:1"], threads: false);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("127.0.0.1:1", result.Stderr, StringComparison.Ordinal);
    }
}
