using System.Diagnostics;
using System.Text.Json.Nodes;
using Pollen.Model.Config;
using Pollen.Model.Generation;
using Pollen.Model.Layers;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Training.Data;
using Pollen.Training.Local;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Bench;

/// <summary>
/// <c>pollen bench model</c>: training and generation throughput of Pollen's trainer and generator,
/// each next to a bare TorchSharp loop over the same model in the same run, so the overhead shows as a
/// ratio that does not depend on how busy the machine is.
/// </summary>
public static class ModelBench
{
    /// <summary>Settings of the preset scenario.</summary>
    /// <param name="TrainSteps">Measured training steps per loop (after one warm-up step).</param>
    /// <param name="BatchSize">Sequences per training step.</param>
    /// <param name="SeqLen">Tokens per training sequence.</param>
    /// <param name="GenerateTokens">Tokens generated per measurement.</param>
    /// <param name="Repeats">Measurements per loop; the median is reported.</param>
    public sealed record Settings(int TrainSteps = 10, int BatchSize = 16, int SeqLen = 128, int GenerateTokens = 128, int Repeats = 5);

    /// <summary>Measures one preset; returns the scenario's JSON object.</summary>
    public static JsonObject RunPreset(string preset, Settings s, Action<string>? log = null)
    {
        var config = ModelPresets.Get(preset);
        var seqLen = Math.Min(s.SeqLen, config.MaxPositionEmbeddings);
        var data = TokenDataset.FromDocuments(SyntheticCorpus.Stories(1234, 2L * 1024 * 1024), ByteTokenizer.Instance, seqLen, seed: 0);
        long tokensPerStep = (long)s.BatchSize * seqLen;

        var (trainer, bareTrain) = Interleaved(s.Repeats,
            () => TrainerTokensPerSecond(config, data, s, tokensPerStep),
            () => BareTrainTokensPerSecond(config, data, s, tokensPerStep));
        log?.Invoke($"{preset}: trainer {trainer:F0} tokens/s, bare training loop {bareTrain:F0} tokens/s");

        manual_seed(0);
        using var model = new Transformer(config);
        model.eval();
        int[] prompt = [.. "Once upon a time"u8.ToArray().Select(b => (int)b)];
        var (generate, bareGenerate) = Interleaved(s.Repeats,
            () => GeneratorTokensPerSecond(model, prompt, s.GenerateTokens),
            () => BareDecodeTokensPerSecond(model, prompt, s.GenerateTokens));
        log?.Invoke($"{preset}: generator {generate:F1} tokens/s, bare decode loop {bareGenerate:F1} tokens/s");

        return new JsonObject
        {
            ["scenario"] = "model",
            ["preset"] = preset,
            ["parameters"] = config.ParameterCount(),
            ["threads"] = get_num_threads(),
            ["mkl_vendor_fix"] = Pollen.Model.Runtime.TorchRuntime.MklDispatchStatus,
            ["batch_size"] = s.BatchSize,
            ["seq_len"] = seqLen,
            ["train_tokens_per_s"] = Math.Round(trainer, 1),
            ["bare_train_tokens_per_s"] = Math.Round(bareTrain, 1),
            ["train_ratio"] = Math.Round(trainer / bareTrain, 3),
            ["generate_tokens_per_s"] = Math.Round(generate, 2),
            ["bare_generate_tokens_per_s"] = Math.Round(bareGenerate, 2),
            ["generate_ratio"] = Math.Round(generate / bareGenerate, 3),
        };
    }

    /// <summary>Prompt (prefill) and generation throughput of an existing checkpoint.</summary>
    public static JsonObject RunCheckpoint(Transformer model, string directory, int promptTokens, int generateTokens, int repeats, Action<string>? log = null)
    {
        var config = model.Config;
        promptTokens = Math.Min(promptTokens, config.MaxPositionEmbeddings - generateTokens - 1);
        if (promptTokens < 1)
        {
            throw new ArgumentException($"the model's context ({config.MaxPositionEmbeddings}) is too short for {generateTokens} generated tokens");
        }
        var random = new Random(0);
        var prompt = Enumerable.Range(0, promptTokens).Select(_ => random.Next(Math.Min(config.VocabSize, 256))).ToArray();
        var prefill = Median(repeats, () =>
        {
            using var session = model.OpenSession(promptTokens);
            using var ids = tensor(prompt.Select(i => (long)i).ToArray(), [1, promptTokens]);
            var clock = Stopwatch.StartNew();
            using var logits = session.ForwardAsync(ids).AsTask().GetAwaiter().GetResult();
            return promptTokens / clock.Elapsed.TotalSeconds;
        });
        log?.Invoke($"prefill {prefill:F1} tokens/s");
        var (generate, bare) = Interleaved(repeats,
            () => GeneratorTokensPerSecond(model, prompt.Take(8).ToArray(), generateTokens),
            () => BareDecodeTokensPerSecond(model, prompt.Take(8).ToArray(), generateTokens));
        log?.Invoke($"generate {generate:F2} tokens/s, bare decode loop {bare:F2} tokens/s");
        return new JsonObject
        {
            ["scenario"] = "model-checkpoint",
            ["model"] = directory,
            ["dtype"] = model.Dtype.ToString().ToLowerInvariant(),
            ["parameters"] = model.parameters().Sum(p => p.numel()),
            ["threads"] = get_num_threads(),
            ["mkl_vendor_fix"] = Pollen.Model.Runtime.TorchRuntime.MklDispatchStatus,
            ["prompt_tokens"] = promptTokens,
            ["prompt_tokens_per_s"] = Math.Round(prefill, 1),
            ["generate_tokens_per_s"] = Math.Round(generate, 2),
            ["bare_generate_tokens_per_s"] = Math.Round(bare, 2),
            ["generate_ratio"] = Math.Round(generate / bare, 3),
        };
    }

    /// <summary>
    /// Aggregate decode throughput of <paramref name="sessions"/> concurrent sessions stepped together with
    /// <see cref="Block.ForwardSessions"/> against the same sessions stepped one after another.
    /// </summary>
    public static JsonObject RunSessions(string preset, int sessions, int steps, int repeats, Action<string>? log = null)
    {
        var config = ModelPresets.Get(preset);
        manual_seed(0);
        using var model = new Transformer(config);
        model.eval();
        using var noGrad = no_grad();
        var caches = Enumerable.Range(0, sessions).Select(_ => new KvCache(config.MaxPositionEmbeddings)).ToArray();
        try
        {
            for (var i = 0; i < sessions; i++)
            {
                // sessions of different lengths, as a server sees them
                using var scope = NewDisposeScope();
                var length = 16 + (8 * i);
                var h = model.Embed(randint(0, 256, [1, length]));
                var positions = Transformer.DefaultPositions(1, length);
                foreach (var block in model.Blocks)
                {
                    h = block.forward(h, positions, caches[i]);
                }
            }
            double Step(bool together)
            {
                var clock = Stopwatch.StartNew();
                for (var s = 0; s < steps; s++)
                {
                    using var scope = NewDisposeScope();
                    var h = model.Embed(randint(0, 256, [sessions, 1])); // (N, 1, C)
                    if (together)
                    {
                        var positions = cat(caches.Select(c => Transformer.DefaultPositions(1, 1, c.Length)).ToArray(), 0);
                        foreach (var block in model.Blocks)
                        {
                            h = block.ForwardSessions(h, positions, caches);
                        }
                        _ = model.Head(h).argmax(-1).sum().item<long>();
                        continue;
                    }
                    for (var i = 0; i < sessions; i++)
                    {
                        var row = h.narrow(0, i, 1);
                        var positions = Transformer.DefaultPositions(1, 1, caches[i].Length);
                        foreach (var block in model.Blocks)
                        {
                            row = block.forward(row, positions, caches[i]);
                        }
                        _ = model.Head(row).argmax(-1).item<long>();
                    }
                }
                return (double)steps * sessions / clock.Elapsed.TotalSeconds;
            }
            var (batched, sequential) = Interleaved(repeats, () => Step(true), () => Step(false));
            log?.Invoke($"{preset}: {sessions} sessions batched {batched:F0} tokens/s, one by one {sequential:F0} tokens/s");
            return new JsonObject
            {
                ["scenario"] = "model-sessions",
                ["preset"] = preset,
                ["sessions"] = sessions,
                ["threads"] = get_num_threads(),
                ["batched_tokens_per_s"] = Math.Round(batched, 1),
                ["sequential_tokens_per_s"] = Math.Round(sequential, 1),
                ["batched_ratio"] = Math.Round(batched / sequential, 3),
            };
        }
        finally
        {
            foreach (var cache in caches)
            {
                cache.Dispose();
            }
        }
    }

    private static double TrainerTokensPerSecond(ModelConfig config, TokenDataset data, Settings s, long tokensPerStep)
    {
        manual_seed(0);
        using var model = new Transformer(config);
        var options = new TrainerOptions
        {
            // one warm-up step, the measured steps, and one more whose final evaluation is not timed
            Steps = s.TrainSteps + 2,
            BatchSize = s.BatchSize,
            EvalEvery = int.MaxValue,
            EvalBatches = 1,
            CheckpointEvery = 0,
        };
        using var trainer = new Trainer(model, data, options, outDir: null);
        var clock = new Stopwatch();
        trainer.Progress += p =>
        {
            if (p.Step == 1)
            {
                clock.Start(); // step 1 is warm-up
            }
            else if (p.Step == s.TrainSteps + 1)
            {
                clock.Stop();
            }
        };
        trainer.Run();
        return s.TrainSteps * tokensPerStep / clock.Elapsed.TotalSeconds;
    }

    /// <summary>The textbook loop: forward, loss, backward, torch's AdamW; no schedule, clipping or metrics.</summary>
    private static double BareTrainTokensPerSecond(ModelConfig config, TokenDataset data, Settings s, long tokensPerStep)
    {
        manual_seed(0);
        using var model = new Transformer(config);
        model.train();
        using var optimizer = optim.AdamW(model.parameters(), 3e-3, 0.9, 0.95, weight_decay: 0.1);
        var clock = new Stopwatch();
        for (var step = 0; step <= s.TrainSteps; step++)
        {
            if (step == 1)
            {
                clock.Start();
            }
            using var scope = NewDisposeScope();
            var (input, target) = data.GetTrainBatch(step, s.BatchSize);
            optimizer.zero_grad();
            var logits = model.forward(input);
            var loss = nn.functional.cross_entropy(logits.view(-1, config.VocabSize), target.view(-1));
            loss.backward();
            optimizer.step();
            _ = loss.item<float>();
        }
        clock.Stop();
        return s.TrainSteps * tokensPerStep / clock.Elapsed.TotalSeconds;
    }

    private static double GeneratorTokensPerSecond(Transformer model, int[] prompt, int tokens)
    {
        var options = new GenerationOptions { MaxNewTokens = tokens, StopAtEos = false };
        var clock = Stopwatch.StartNew();
        var result = TextGenerator.GenerateToEndAsync(model, null, prompt, options).GetAwaiter().GetResult();
        return result.Ids.Count / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Greedy decoding written directly against the model: prefill, then one cached forward and argmax per token.</summary>
    private static double BareDecodeTokensPerSecond(Transformer model, int[] prompt, int tokens)
    {
        using var noGrad = no_grad();
        using var cache = new KvCache(prompt.Length + tokens);
        var clock = Stopwatch.StartNew();
        using var first = NewDisposeScope();
        var next = model.forward(tensor(prompt.Select(i => (long)i).ToArray(), [1, prompt.Length]), cache: cache)
            .select(1, -1).argmax(-1, keepdim: true).MoveToOuterDisposeScope();
        for (var produced = 1; produced < tokens; produced++)
        {
            using var scope = NewDisposeScope();
            var id = model.forward(next, cache: cache).select(1, -1).argmax(-1, keepdim: true);
            _ = id.item<long>();
            next.Dispose();
            next = id.MoveToOuterDisposeScope();
        }
        return tokens / clock.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// Measures a and b alternately (a, b, b, a, a, b, …) so drift in machine load hits both alike; returns
    /// the median of each after one unmeasured warm-up of each.
    /// </summary>
    private static (double A, double B) Interleaved(int repeats, Func<double> a, Func<double> b)
    {
        a();
        b();
        var first = new List<double>();
        var second = new List<double>();
        for (var i = 0; i < Math.Max(1, repeats); i++)
        {
            if (i % 2 == 0)
            {
                first.Add(a());
                second.Add(b());
            }
            else
            {
                second.Add(b());
                first.Add(a());
            }
        }
        return (MedianOf(first), MedianOf(second));
    }

    private static double MedianOf(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    private static double Median(int repeats, Func<double> measure)
    {
        var values = Enumerable.Range(0, Math.Max(1, repeats)).Select(_ => measure()).Order().ToArray();
        return values[values.Length / 2];
    }
}
