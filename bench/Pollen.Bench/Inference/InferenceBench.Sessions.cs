using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Pollen.Inference.Client;
using Pollen.Model.Layers;
using Pollen.Model.Llama;
using static TorchSharp.torch;

namespace Pollen.Bench.Inference;

public static partial class InferenceBench
{
    /// <summary>
    /// Aggregate decoding tokens/s of N concurrent batch-1 sessions through the swarm, for each N, the counts
    /// alternated in order across repeats; every session's tokens are checked against local decoding.
    /// </summary>
    private static async Task<JsonObject> SessionsAsync(Transformer local, SwarmModel client, BenchSwarm swarm, long[][] prompts, Settings s, JsonObject common,
        Action<string>? log, CancellationToken cancellationToken)
    {
        var load = LoadAverage();
        var counts = s.SessionCounts;
        var expected = new long[prompts.Length][];
        for (var i = 0; i < prompts.Length; i++)
        {
            expected[i] = (await GreedyDecoder.RunAsync(local, prompts[i], s.GenerateTokens, cancellationToken: cancellationToken).ConfigureAwait(false)).Ids;
        }
        _ = await ConcurrentAsync(client, prompts, counts.Max(), s.GenerateTokens, cancellationToken).ConfigureAwait(false); // warm-up
        var rates = counts.ToDictionary(n => n, _ => new List<double>());
        var batchedBefore = swarm.BatchedSteps;
        var sharedBefore = swarm.SharedCaches;
        var (pushedBefore, messagesBefore, answersBefore) = (swarm.StepsPushed, swarm.PushMessages, swarm.LaneAnswers);
        int sessions = 0, matching = 0;
        for (var r = 0; r < s.Repeats; r++)
        {
            foreach (var n in r % 2 == 0 ? counts : counts.Reverse())
            {
                var (rate, runs) = await ConcurrentAsync(client, prompts, n, s.GenerateTokens, cancellationToken).ConfigureAwait(false);
                rates[n].Add(rate);
                sessions += runs.Length;
                matching += runs.Where((d, i) => d.Ids.SequenceEqual(expected[i])).Count();
            }
        }
        var baseline = Median(rates[counts[0]]);
        var result = Scenario("inference-sessions", common);
        foreach (var n in counts)
        {
            var rate = Median(rates[n]);
            var key = n.ToString(CultureInfo.InvariantCulture);
            result[$"sessions_{key}_tokens_per_s"] = Math.Round(rate, 2);
            result[$"sessions_{key}_ratio"] = Math.Round(rate / baseline, 3);
            result[$"sessions_{key}_runs_tokens_per_s"] = new JsonArray([.. rates[n].Select(x => (JsonNode)Math.Round(x, 2))]);
            log?.Invoke($"{n} concurrent sessions: {rate:F1} tokens/s aggregate, {rate / baseline:F2}× {counts[0]}");
        }
        // the same steps without the network: the servers' blocks, here, batched as a server batches them
        // (with the servers' weight layout)
        using var blocks = Pollen.Model.Checkpoints.ModelCheckpoint.Load(swarm.Directory);
        blocks.eval();
        if (swarm.Layout == Pollen.Inference.Server.WeightLayout.ColumnMajor)
        {
            foreach (var block in blocks.Blocks)
            {
                block.UseColumnMajorWeights();
            }
        }
        var ceiling = BlocksOnlyRates(blocks, counts, s.Repeats, s.PromptTokens);
        foreach (var n in counts)
        {
            var key = n.ToString(CultureInfo.InvariantCulture);
            result[$"blocks_only_{key}_ratio"] = Math.Round(ceiling[n] / ceiling[counts[0]], 3);
            log?.Invoke($"{n} sessions, blocks alone (no network): {ceiling[n]:F1} tokens/s, {ceiling[n] / ceiling[counts[0]]:F2}× {counts[0]}");
        }
        result["batched_forwards"] = swarm.BatchedSteps - batchedBefore;
        result["caches_shared"] = swarm.SharedCaches - sharedBefore;
        result["steps_pushed"] = swarm.StepsPushed - pushedBefore;
        result["push_messages"] = swarm.PushMessages - messagesBefore;
        result["lane_answers"] = swarm.LaneAnswers - answersBefore;
        result["sessions_matching_local"] = matching;
        result["sessions_run"] = sessions;
        result["load_avg_1m"] = load;
        return result;
    }

    /// <summary>
    /// Runs <paramref name="n"/> sessions at once; they prefill, wait for each other, then decode. The rate is
    /// the one-token steps of all sessions over the time from that start to the last session's end.
    /// </summary>
    private static async Task<(double Rate, Decoded[] Runs)> ConcurrentAsync(SwarmModel client, long[][] prompts, int n, int tokens, CancellationToken cancellationToken)
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ready = 0;
        var start = 0L;
        Task Prefilled()
        {
            if (Interlocked.Increment(ref ready) == n)
            {
                start = Stopwatch.GetTimestamp();
                gate.TrySetResult();
            }
            return gate.Task;
        }
        async Task<Decoded> OneAsync(int i)
        {
            try
            {
                return await GreedyDecoder.RunAsync(client, prompts[i], tokens, prefilled: Prefilled, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                gate.TrySetException(e); // the others must not wait for this one forever
                throw;
            }
        }
        var runs = await Task.WhenAll(Enumerable.Range(0, n).Select(i => Task.Run(() => OneAsync(i), cancellationToken))).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return ((double)n * (tokens - 1) / elapsed, runs);
    }

    /// <summary>
    /// Tokens/s of N sessions stepped through all blocks in this process, one <see cref="Block.ForwardSessions"/>
    /// per block (one <see cref="Block.forward"/> for a single session): the ratios a swarm could reach if
    /// the network and scheduling were free. Counts are alternated; medians over repeats.
    /// </summary>
    private static Dictionary<int, double> BlocksOnlyRates(Transformer model, IReadOnlyList<int> counts, int repeats, int promptTokens)
    {
        const int Steps = 16;
        var config = model.Config;
        var rates = counts.ToDictionary(n => n, _ => new List<double>());
        using var noGrad = no_grad();
        for (var r = 0; r <= repeats; r++)
        {
            foreach (var n in r % 2 == 0 ? counts : counts.Reverse())
            {
                var caches = Enumerable.Range(0, n).Select(_ => new KvCache(promptTokens + Steps + 1)).ToArray();
                try
                {
                    for (var i = 0; i < n; i++)
                    {
                        using var scope = NewDisposeScope();
                        var h = randn(1, promptTokens, config.HiddenSize); // (1, T, C)
                        var positions = Transformer.DefaultPositions(1, promptTokens);
                        foreach (var block in model.Blocks)
                        {
                            h = block.forward(h, positions, caches[i]);
                        }
                    }
                    if (n > 1)
                    {
                        KvCache.Share(caches); // as a server does for sessions that keep stepping together
                    }
                    var clock = Stopwatch.StartNew();
                    for (var t = 0; t < Steps; t++)
                    {
                        using var scope = NewDisposeScope();
                        var h = randn(n, 1, config.HiddenSize); // (N, 1, C)
                        var positions = Transformer.DefaultPositions(n, 1, promptTokens + t);
                        foreach (var block in model.Blocks)
                        {
                            h = n == 1 ? block.forward(h, positions, caches[0]) : block.ForwardSessions(h, positions, caches);
                        }
                        _ = h.sum().item<float>();
                    }
                    if (r > 0)
                    {
                        rates[n].Add(n * Steps / clock.Elapsed.TotalSeconds); // the first round is a warm-up
                    }
                }
                finally
                {
                    foreach (var cache in caches)
                    {
                        cache.Dispose();
                    }
                }
            }
        }
        return counts.ToDictionary(n => n, n => Median(rates[n]));
    }
}
