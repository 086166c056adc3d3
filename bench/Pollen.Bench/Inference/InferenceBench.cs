using System.Globalization;
using System.Text.Json.Nodes;
using Pollen.Inference.Client;
using Pollen.Inference.Server;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using static TorchSharp.torch;

namespace Pollen.Bench.Inference;

/// <summary>
/// <c>pollen bench inference</c>: one model, block servers on loopback each hosting a contiguous part of
/// its blocks (real gRPC over Kestrel, in this process), and a swarm client — measured against the same
/// model decoding locally, in the same run.
/// </summary>
/// <remarks>
/// Three scenarios, one JSON object each: <c>inference-swarm</c> (batch-1 greedy decoding, local against
/// the swarm, alternating token by token), <c>inference-sessions</c> (aggregate tokens/s of concurrent sessions through
/// the swarm, the counts interleaved) and <c>inference-recovery</c> (a server killed mid-generation while
/// a duplicate of its span is up: the stall of the step that hits it, and whether the tokens equal the
/// undisturbed run's). Client and servers share this process and its cores, so the swarm also pays for
/// the servers' gRPC work on the cores the blocks compute on — a loopback swarm is the worst case for
/// overhead, a best case for latency.
/// </remarks>
public static partial class InferenceBench
{
    /// <summary>Settings.</summary>
    /// <param name="Servers">Block servers, each hosting a contiguous part of the blocks.</param>
    /// <param name="PromptTokens">Prompt length of every session.</param>
    /// <param name="GenerateTokens">Tokens generated per session (the first comes from the prompt's forward).</param>
    /// <param name="Repeats">Measurements of each kind; medians are reported.</param>
    /// <param name="Sessions">Concurrent session counts measured; the first is the baseline of the ratios.</param>
    /// <param name="Seed">Seed of the weights and prompts.</param>
    public sealed record Settings(int Servers = 4, int PromptTokens = 16, int GenerateTokens = 64, int Repeats = 5, IReadOnlyList<int>? Sessions = null, int Seed = 0,
        WeightLayout Layout = WeightLayout.Auto)
    {
        /// <summary>The session counts, default 1, 4 and 8.</summary>
        public IReadOnlyList<int> SessionCounts => Sessions ?? [1, 4, 8];

        /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
        public void Validate(ModelConfig config)
        {
            if (Servers < 1 || Servers > config.NumHiddenLayers)
            {
                throw new ArgumentException($"--servers must be in 1..{config.NumHiddenLayers} (the model's blocks), got {Servers}");
            }
            if (PromptTokens < 1 || GenerateTokens < 4 || Repeats < 1)
            {
                throw new ArgumentException("--prompt-tokens and --repeats must be positive and --tokens at least 4");
            }
            if (PromptTokens + GenerateTokens > config.MaxPositionEmbeddings)
            {
                throw new ArgumentException($"--prompt-tokens + --tokens ({PromptTokens + GenerateTokens}) exceed the model's context of {config.MaxPositionEmbeddings}");
            }
            if (SessionCounts.Count == 0 || SessionCounts.Any(n => n < 1))
            {
                throw new ArgumentException("--sessions must list positive counts");
            }
        }
    }

    /// <summary>Runs the three scenarios on <paramref name="config"/>, handing each JSON object to <paramref name="emit"/> as soon as it is measured.</summary>
    public static async Task RunAsync(ModelConfig config, Settings s, Action<JsonObject> emit, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        config.Validate();
        s.Validate(config);
        using var local = new Transformer(config, seed: s.Seed);
        local.eval();
        var options = new BlockServerOptions
        {
            ModelId = "bench",
            CacheTokens = Math.Max(8192, 2L * s.SessionCounts.Max() * (s.PromptTokens + s.GenerateTokens)),
            WeightLayout = s.Layout,
        };
        await using var swarm = BenchSwarm.Create(local, options);
        var parts = BenchSwarm.Split(config.NumHiddenLayers, s.Servers);
        var servers = new List<ServerSpan>();
        foreach (var (start, end) in parts)
        {
            servers.Add((await swarm.StartAsync(start, end, cancellationToken).ConfigureAwait(false)).Span);
        }
        log?.Invoke($"model: {config}; {s.Servers} servers on 127.0.0.1 hosting blocks {Describe(servers)}");
        var prompts = Prompts(s, Math.Max(s.SessionCounts.Max(), 1), Math.Min(config.VocabSize, 256));
        var common = new JsonObject
        {
            ["parameters"] = config.ParameterCount(),
            ["model"] = config.ToString(),
            ["servers"] = s.Servers,
            ["spans"] = Describe(servers),
            ["threads"] = get_num_threads(),
            ["weight_layout"] = swarm.Layout.ToString(),
            ["prompt_tokens"] = s.PromptTokens,
            ["tokens"] = s.GenerateTokens,
            ["repeats"] = s.Repeats,
        };

        using (var client = swarm.Client(servers))
        using (var relay = swarm.Client(servers, new SwarmModelOptions { PushBetweenServers = false }))
        {
            emit(await SwarmAgainstLocalAsync(local, client, relay, prompts[0], s, common, log, cancellationToken).ConfigureAwait(false));
            emit(await SessionsAsync(local, client, swarm, prompts, s, common, log, cancellationToken).ConfigureAwait(false));
        }
        emit(await RecoveryAsync(swarm, servers, parts, prompts[0], s, common, log, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// Batch-1 greedy decoding, local and through the swarm, alternating every <see cref="Chunk"/> tokens
    /// (decoding as a user runs it); the ratio is the median over repeats of each run's swarm rate over its
    /// local rate. The same is measured alternating token by token, interleaved with it, where every swarm
    /// step starts from idle threads (reported next to it, not the headline). Interleaved with both, the
    /// swarm without server-to-server pushes (the client carrying every hop, <paramref name="relay"/>) is
    /// measured against local the same way, so the gain of pushing is a ratio from the same run.
    /// </summary>
    private static async Task<JsonObject> SwarmAgainstLocalAsync(Transformer local, SwarmModel client, SwarmModel relay, long[] prompt, Settings s, JsonObject common,
        Action<string>? log, CancellationToken cancellationToken)
    {
        var load = LoadAverage();
        // one unmeasured run first (JIT, connections, kernel selection)
        _ = await GreedyDecoder.RunAlternatingAsync(local, client, prompt, s.GenerateTokens, Chunk, cancellationToken).ConfigureAwait(false);
        _ = await GreedyDecoder.RunAlternatingAsync(local, relay, prompt, s.GenerateTokens, Chunk, cancellationToken).ConfigureAwait(false);
        var localRuns = new List<Decoded>();
        var swarmRuns = new List<Decoded>();
        var tokenRatios = new List<double>();
        var relayRatios = new List<double>();
        var relayRuns = new List<Decoded>();
        for (var r = 0; r < s.Repeats; r++)
        {
            var (rl, rw) = await GreedyDecoder.RunAlternatingAsync(local, relay, prompt, s.GenerateTokens, Chunk, cancellationToken).ConfigureAwait(false);
            relayRatios.Add(rw.TokensPerSecond / rl.TokensPerSecond);
            relayRuns.Add(rw);
            var (l, w) = await GreedyDecoder.RunAlternatingAsync(local, client, prompt, s.GenerateTokens, Chunk, cancellationToken).ConfigureAwait(false);
            localRuns.Add(l);
            swarmRuns.Add(w);
            var (lt, wt) = await GreedyDecoder.RunAlternatingAsync(local, client, prompt, s.GenerateTokens, 1, cancellationToken).ConfigureAwait(false);
            tokenRatios.Add(wt.TokensPerSecond / lt.TokensPerSecond);
        }
        var localRate = Median(localRuns.Select(d => d.TokensPerSecond));
        var swarmRate = Median(swarmRuns.Select(d => d.TokensPerSecond));
        var ratio = Median(swarmRuns.Zip(localRuns, (w, l) => w.TokensPerSecond / l.TokensPerSecond));
        var matches = swarmRuns.Concat(relayRuns).All(d => d.Ids.SequenceEqual(localRuns[0].Ids));
        log?.Invoke($"batch 1: local {localRate:F1} tokens/s, swarm {swarmRate:F1} tokens/s, ratio {ratio:F3} (alternating token by token: {Median(tokenRatios):F3}; "
            + $"client carrying every hop: {Median(relayRatios):F3}); tokens equal: {matches}");
        var result = Scenario("inference-swarm", common);
        result["local_tokens_per_s"] = Math.Round(localRate, 2);
        result["swarm_tokens_per_s"] = Math.Round(swarmRate, 2);
        result["swarm_ratio"] = Math.Round(ratio, 3);
        result["alternate_every"] = Chunk;
        result["swarm_ratio_token_alternation"] = Math.Round(Median(tokenRatios), 3);
        result["relay_tokens_per_s"] = Math.Round(Median(relayRuns.Select(d => d.TokensPerSecond)), 2);
        result["relay_ratio"] = Math.Round(Median(relayRatios), 3);
        result["relay_step_ms"] = Math.Round(1000 * Median(relayRuns.SelectMany(d => d.StepSeconds)), 3);
        result["local_step_ms"] = Math.Round(1000 * Median(localRuns.SelectMany(d => d.StepSeconds)), 3);
        result["swarm_step_ms"] = Math.Round(1000 * Median(swarmRuns.SelectMany(d => d.StepSeconds)), 3);
        result["local_runs_tokens_per_s"] = Rates(localRuns);
        result["swarm_runs_tokens_per_s"] = Rates(swarmRuns);
        result["swarm_ratio_runs"] = new JsonArray([.. swarmRuns.Zip(localRuns, (w, l) => (JsonNode)Math.Round(w.TokensPerSecond / l.TokensPerSecond, 3))]);
        result["tokens_match"] = matches;
        result["load_avg_1m"] = load;
        return result;
    }

    /// <summary>Tokens each side decodes in a row before the other takes its turn.</summary>
    private const int Chunk = 8;

    private static JsonObject Scenario(string name, JsonObject common)
    {
        var result = new JsonObject { ["scenario"] = name };
        foreach (var (key, value) in common)
        {
            result[key] = value?.DeepClone();
        }
        return result;
    }

    private static long[][] Prompts(Settings s, int count, int vocab)
    {
        var random = new Random(s.Seed);
        return [.. Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, s.PromptTokens).Select(_ => (long)random.Next(vocab)).ToArray())];
    }

    private static string Describe(IEnumerable<ServerSpan> servers) =>
        string.Join(",", servers.Select(x => string.Create(CultureInfo.InvariantCulture, $"{x.Start}:{x.End}")));

    private static JsonArray Rates(IEnumerable<Decoded> runs) => [.. runs.Select(d => (JsonNode)Math.Round(d.TokensPerSecond, 2))];

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>The 1-minute load average (Linux), or null.</summary>
    private static double? LoadAverage()
    {
        try
        {
            var text = File.ReadAllText("/proc/loadavg");
            return double.Parse(text.Split(' ')[0], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}
