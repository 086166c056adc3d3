using System.Diagnostics;
using System.Text.Json.Nodes;
using Pollen.Inference.Client;

namespace Pollen.Bench.Inference;

public static partial class InferenceBench
{
    /// <summary>
    /// A server killed mid-generation while a duplicate of its span is up. Each repeat starts a fresh victim
    /// for one span (the only server of it the client knows, so routes take it), generates to the middle,
    /// kills the victim by stopping its host and lists the long-lived duplicate, and times the next step:
    /// the client sees the stream fail, bans the server, finds the duplicate on refreshing its directory,
    /// opens a session there, replays the session's past steps and finishes the step. The tokens must
    /// equal an undisturbed run's.
    /// </summary>
    private static async Task<JsonObject> RecoveryAsync(BenchSwarm swarm, IReadOnlyList<ServerSpan> servers, IReadOnlyList<(int Start, int End)> parts, long[] prompt,
        Settings s, JsonObject common, Action<string>? log, CancellationToken cancellationToken)
    {
        var load = LoadAverage();
        var victimPart = parts.Count > 1 ? 1 : 0;
        var (start, end) = parts[victimPart];
        var duplicate = (await swarm.StartAsync(start, end, cancellationToken).ConfigureAwait(false)).Span;
        var killAt = s.GenerateTokens / 2;

        Decoded undisturbed;
        using (var client = swarm.Client([.. servers, duplicate]))
        {
            _ = await GreedyDecoder.RunAsync(client, prompt, s.GenerateTokens, cancellationToken: cancellationToken).ConfigureAwait(false);
            undisturbed = await GreedyDecoder.RunAsync(client, prompt, s.GenerateTokens, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        var stepMs = Median(undisturbed.StepSeconds) * 1000;

        var stalls = new List<double>();
        var kills = new List<double>();
        var allMatch = true;
        for (var r = 0; r < s.Repeats; r++)
        {
            var (victim, victimSpan) = await swarm.StartAsync(start, end, cancellationToken).ConfigureAwait(false);
            // the duplicate is listed only once the victim is dead, so the route surely runs through the victim
            var directory = new GrowingDirectory([.. servers.Where((_, i) => i != victimPart), victimSpan]);
            using var client = swarm.Client(directory);
            async Task KillBeforeAsync(int token)
            {
                if (token == killAt)
                {
                    var clock = Stopwatch.StartNew();
                    await swarm.KillAsync(victim).ConfigureAwait(false);
                    kills.Add(clock.Elapsed.TotalMilliseconds);
                    directory.Add(duplicate);
                }
            }
            var disturbed = await GreedyDecoder.RunAsync(client, prompt, s.GenerateTokens, KillBeforeAsync, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (swarm.Hosts[victim] is not null || !client.Bans.IsBanned(victimSpan.Address))
            {
                throw new InvalidOperationException("the killed server was not the one in use");
            }
            stalls.Add(disturbed.StepSeconds[killAt - 1] * 1000);
            allMatch &= disturbed.Ids.SequenceEqual(undisturbed.Ids);
        }
        var stall = Median(stalls);
        log?.Invoke($"recovery: a server of blocks {start}..{end - 1} killed after {killAt} tokens; next token after {stall:F0} ms "
            + $"(a step takes {stepMs:F1} ms; {killAt} past steps replayed); tokens equal the undisturbed run: {allMatch}");
        var result = Scenario("inference-recovery", common);
        result["killed_blocks"] = $"{start}:{end}";
        result["kill_after_tokens"] = killAt;
        result["replayed_steps"] = killAt; // the prompt's forward and killAt - 1 one-token steps
        result["stall_ms"] = Math.Round(stall, 1);
        result["stall_runs_ms"] = new JsonArray([.. stalls.Select(x => (JsonNode)Math.Round(x, 1))]);
        result["step_ms"] = Math.Round(stepMs, 2);
        result["stall_over_step"] = Math.Round(stall / stepMs, 1);
        result["kill_ms"] = Math.Round(Median(kills), 1);
        result["tokens_match"] = allMatch;
        result["load_avg_1m"] = load;
        return result;
    }

    /// <summary>A server list that grows while a client uses it: a server joining the swarm.</summary>
    private sealed class GrowingDirectory(IEnumerable<ServerSpan> initial) : Pollen.Inference.Routing.IServerDirectory
    {
        private volatile ServerSpan[] _servers = [.. initial];

        public string Description => "the benchmark's servers";

        public void Add(ServerSpan server) => _servers = [.. _servers, server];

        public Task<IReadOnlyList<ServerSpan>> GetServersAsync(bool refresh, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<ServerSpan>>(_servers);
    }
}
