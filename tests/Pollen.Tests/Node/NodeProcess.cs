using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Pollen.Tests.Cli;

namespace Pollen.Tests.Node;

/// <summary>A <c>pollen node</c> OS process: its addresses from stdout, its status over HTTP, its stderr kept for failure messages.</summary>
internal sealed class NodeProcess : IDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(20) };
    private readonly StringBuilder _stderr = new();
    private readonly StringBuilder _stdout = new();
    private readonly Task _drainErr;
    private readonly TaskCompletionSource<(string Swarm, Uri Http)> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _drainOut;

    private NodeProcess(Process process, string name)
    {
        Process = process;
        Name = name;
        _drainErr = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync() is { } line)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(line);
                }
            }
        });
        _drainOut = Task.Run(async () =>
        {
            string? swarm = null;
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                lock (_stdout)
                {
                    _stdout.AppendLine(line);
                }
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 2 && parts[0] == "swarm")
                {
                    swarm = parts[1];
                }
                else if (parts.Length >= 2 && parts[0] == "http" && swarm is not null)
                {
                    _ready.TrySetResult((swarm, new Uri(parts[1])));
                }
            }
            _ready.TrySetException(new InvalidOperationException($"node {name} exited before printing its addresses:\n{Output}"));
        });
    }

    public Process Process { get; }

    public string Name { get; }

    public string SwarmAddress { get; private set; } = "";

    public Uri Url { get; private set; } = new("http://127.0.0.1/");

    /// <summary>The lines the process wrote to stderr so far.</summary>
    public IReadOnlyList<string> ErrorLines
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            }
        }
    }

    /// <summary>Everything the process printed so far (for failure messages).</summary>
    public string Output
    {
        get
        {
            lock (_stdout)
            {
                lock (_stderr)
                {
                    var err = _stderr.ToString();
                    return $"--- {Name} stdout ---\n{_stdout}\n--- {Name} stderr (last 6000 chars) ---\n{err[Math.Max(0, err.Length - 6000)..]}";
                }
            }
        }
    }

    /// <summary>Starts <c>pollen node</c> on loopback with fast settings plus <paramref name="args"/>.</summary>
    public static NodeProcess Start(string name, string home, params string[] args)
    {
        string[] all = ["node", "--dev", "--home", home, "--listen", "127.0.0.1", "--http-listen", "127.0.0.1", "--http-port", "0", "--no-dashboard", .. args];
        return new NodeProcess(PollenProcess.Start(all), name);
    }

    /// <summary>Waits until the node printed its swarm address and URL.</summary>
    public async Task<NodeProcess> ReadyAsync(TimeSpan timeout)
    {
        var (swarm, url) = await _ready.Task.WaitAsync(timeout, TestContext.Current.CancellationToken);
        SwarmAddress = swarm;
        Url = url;
        return this;
    }

    /// <summary>GET /api/status.</summary>
    public async Task<JsonObject> StatusAsync()
    {
        string text;
        try
        {
            text = await Http.GetStringAsync(new Uri(Url, "api/status"), TestContext.Current.CancellationToken);
        }
        catch (HttpRequestException e) when (Process.HasExited)
        {
            await _drainErr;
            throw new InvalidOperationException($"node {Name} exited with code {Process.ExitCode}:\n{Output}", e);
        }
        return JsonNode.Parse(text)!.AsObject();
    }

    /// <summary>Polls the status until <paramref name="condition"/> holds; returns that status.</summary>
    public async Task<JsonObject> WaitForStatusAsync(Func<JsonObject, bool> condition, TimeSpan timeout, string what)
    {
        JsonObject? last = null;
        await WaitForAsync(async () =>
        {
            try
            {
                last = await StatusAsync();
                return condition(last);
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, timeout, () => $"{Name}: {what}; last status {last?.ToJsonString()?[..Math.Min(1500, last.ToJsonString().Length)]}\n{Output}");
        return last!;
    }

    /// <summary>
    /// Checks <paramref name="condition"/> (which reads the processes' state over HTTP) every 100 ms until it
    /// holds, or fails after <paramref name="timeout"/> saying what was awaited and how things stood.
    /// </summary>
    public static async Task WaitForAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds:0} s waiting for {what()}");
            }
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
    }

    /// <summary>Sends SIGTERM (what Ctrl-C does) and waits for the exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", Process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
        }
        await PollenProcess.WaitAsync(Process, timeout);
        await _drainErr;
        return Process.ExitCode;
    }

    /// <summary>SIGKILL: the node vanishes without leaving.</summary>
    public async Task KillAsync()
    {
        Process.Kill();
        await Process.WaitForExitAsync(TestContext.Current.CancellationToken);
    }

    public static int Round(JsonObject status) => (int?)status["training"]?["round"] ?? -1;

    public static string? Hash(JsonObject status) => (string?)status["training"]?["parameter_hash"];

    public static long TokensServed(JsonObject status) => (long?)status["serving"]?["tokens_served"] ?? 0;

    public void Dispose()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
            Process.WaitForExit();
        }
        Process.Dispose();
        _ = _drainOut;
    }
}
