using System.CommandLine;
using Microsoft.Extensions.Logging;
using Pollen.Node.Hosting;
using Pollen.Node.Status;
using Pollen.Node.Terminal;
using Spectre.Console;

namespace Pollen.Cli.Commands;

/// <summary>
/// <c>pollen node</c>: contribute this machine to the swarm with one command — train the run, serve its
/// blocks, and open the HTTP API and dashboard (see <see cref="NodeHost"/>), until Ctrl+C.
/// </summary>
internal static class NodeCommand
{
    public static Command Create()
    {
        var binding = new NodeOptionsBinding();
        var command = new Command("node", "Join (or found) the swarm: train the model, serve its blocks, and open the OpenAI-compatible API and web dashboard (port 5000), until Ctrl+C.");
        foreach (var option in binding.All)
        {
            command.Options.Add(option);
        }
        command.SetAction((r, ct) => CommonOptions.RunAsync(() => RunAsync(binding.Bind(r), ct)));
        return command;
    }

    private static async Task<int> RunAsync(NodeOptions options, CancellationToken ct)
    {
        if (options.Reset && !NodeReset.Run(options, Console.In, !Console.IsInputRedirected, Console.Error))
        {
            return 1;
        }
        CommonOptions.ApplyThreads(options.Threads);

        // ── TERMINAL DASHBOARD HOOK ────────────────────────────────────────────────────────────────────
        // On a terminal (and without --no-dashboard) the node draws the TerminalDashboard and logs only into
        // RecentLog, which the dashboard shows; otherwise it logs JSON lines on stderr.
        var dashboard = !options.NoDashboard && TerminalDashboard.IsTerminal && TerminalDashboard.CanDraw(AnsiConsole.Console);
        var recent = new RecentLog();
        using var logging = NodeLogging.CreateForNode(options.Verbose, json: !dashboard, recent);

        await using var host = await NodeHost.StartAsync(options, logging, recent, Console.Error, cancellationToken: ct).ConfigureAwait(false);
        Console.Out.WriteLine($"node     {host.PeerId}");
        Console.Out.WriteLine($"swarm    {host.SwarmAddress}   (others join with: pollen node --initial-peers {host.SwarmAddress})");
        Console.Out.WriteLine($"http     {host.HttpUrl}   (dashboard; OpenAI base URL {host.HttpUrl}v1)");
        Console.Out.Flush();

        await using var terminal = dashboard ? new TerminalDashboard() : null;
        if (terminal is not null)
        {
            Shutdown.Quiet = true; // a line on stderr would tear the frame; the stop shows in the dashboard's log
            await terminal.StartAsync(host.Status, ct).ConfigureAwait(false); // draws until ct (Ctrl-C) or disposal
        }
        var stoppedAt = DateTimeOffset.MaxValue;
        using (ct.Register(() => stoppedAt = DateTimeOffset.UtcNow))
        {
            await host.RunAsync(ct).ConfigureAwait(false);
        }
        if (terminal is not null)
        {
            // the dashboard is gone: repeat in plain text what the node logged while leaving
            await terminal.StopAsync(CancellationToken.None).ConfigureAwait(false);
            foreach (var line in recent.Tail(recent.Capacity).Where(l => l.Time >= stoppedAt))
            {
                Console.Error.WriteLine($"{line.Time.ToLocalTime():HH:mm:ss} {line.Level} {line.Message}");
            }
        }
        return 0;
    }
}
