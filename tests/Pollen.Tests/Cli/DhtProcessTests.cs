using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Pollen.Tests.Cli;

/// <summary>Separate <c>pollen dht</c> processes on loopback: they find each other, and survive one being SIGKILLed.</summary>
public sealed class DhtProcessTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "pollen-dht-" + Guid.NewGuid().ToString("N"));
    private readonly List<Process> _processes = [];

    public DhtProcessTests() => Directory.CreateDirectory(_dir);

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
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task ThreeDhtProcessesFindEachOtherAndTheRestKeepAnsweringAfterOneIsKilled()
    {
        var a = await StartDhtAsync("a");
        var b = await StartDhtAsync("b", "--initial-peers", a);
        var c = await StartDhtAsync("c", "--initial-peers", b);

        var listed = await PeersAsync(c);
        Assert.Equal(3, (int)listed["count"]!);
        Assert.Equal(new[] { a, b, c }.Order(), listed["peers"]!.AsArray().Select(p => (string)p!["address"]!).Order());

        var victim = _processes[0];
        victim.Kill(); // SIGKILL on Unix: no shutdown code runs
        await victim.WaitForExitAsync(TestContext.Current.CancellationToken);

        foreach (var survivor in new[] { b, c })
        {
            // the dead peer's announcement lingers until it expires; what matters is that the others answer
            var after = await PeersAsync(survivor);
            Assert.True((int)after["count"]! >= 2);
            Assert.Contains(survivor, after["peers"]!.AsArray().Select(p => (string)p!["address"]!));
        }
        Assert.False(_processes[1].HasExited);
        Assert.False(_processes[2].HasExited);
    }

    private async Task<string> StartDhtAsync(string name, params string[] extra)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in (string[])[Path.Combine(AppContext.BaseDirectory, "pollen.dll"), "dht", "--home", Path.Combine(_dir, name), "--listen", "127.0.0.1", "--port", "0", "--json", .. extra])
        {
            start.ArgumentList.Add(arg);
        }
        var process = Process.Start(start)!;
        _processes.Add(process);
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith('{'))
            {
                var address = (string)JsonNode.Parse(line)!["address"]!;
                Assert.StartsWith("127.0.0.1:", address);
                return address;
            }
        }
        throw new InvalidOperationException($"pollen dht {name} exited with {process.ExitCode} before printing its address");
    }

    private static async Task<JsonObject> PeersAsync(string initialPeer)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "pollen.dll"), "peers", "--initial-peers", initialPeer, "--json", "--timeout", "20" })
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.True(process.ExitCode == 0, await stderr);
        return JsonNode.Parse((await stdout).TrimEnd().Split('\n')[^1])!.AsObject();
    }
}
