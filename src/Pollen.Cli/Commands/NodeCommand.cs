using System.CommandLine;
using Microsoft.Extensions.Logging;
using Pollen.Node.Hosting;
using Pollen.Node.Status;

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

        // ── TERMINAL DASHBOARD HOOK (1/2) ──────────────────────────────────────────────────────────────
        // When TerminalDashboard exists, set this to true: the node then logs only into RecentLog (shown by
        // the dashboard) and starts the dashboard below. Without a terminal or with --no-dashboard, JSON lines.
        const bool TerminalDashboardAvailable = false;
        var dashboard = TerminalDashboardAvailable && !options.NoDashboard && !Console.IsOutputRedirected;
        var recent = new RecentLog();
        using var logging = NodeLogging.CreateForNode(options.Verbose, json: !dashboard, recent);

        await using var host = await NodeHost.StartAsync(options, logging, recent, Console.Error, cancellationToken: ct).ConfigureAwait(false);
        Console.Out.WriteLine($"node     {host.PeerId}");
        Console.Out.WriteLine($"swarm    {host.SwarmAddress}   (others join with: pollen node --initial-peers {host.SwarmAddress})");
        Console.Out.WriteLine($"http     {host.HttpUrl}   (dashboard; OpenAI base URL {host.HttpUrl}v1)");
        Console.Out.Flush();

        Task dashboardTask = Task.CompletedTask;
        if (dashboard)
        {
            // ── TERMINAL DASHBOARD HOOK (2/2) ──────────────────────────────────────────────────────────
            // Start the Spectre.Console dashboard here, rendering host.Status.Snapshot() until ct is cancelled:
            // dashboardTask = new TerminalDashboard(host.Status).RunAsync(ct);
        }
        await host.RunAsync(ct).ConfigureAwait(false);
        await dashboardTask.ConfigureAwait(false);
        return 0;
    }
}
