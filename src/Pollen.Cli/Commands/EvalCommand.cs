using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Pollen.Training.Data;
using Pollen.Training.Local;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen eval</c>: loss and perplexity of a checkpoint on a text corpus.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint directory." };
        var data = new Option<string>("--data") { Description = "A .txt/.jsonl file or a directory of them." };
        var seqLen = new Option<int?>("--seq-len") { Description = "Tokens per window (default: min(256, the model's context))." };
        var batch = new Option<int>("--batch-size") { Description = "Windows per forward pass.", DefaultValueFactory = _ => 8 };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("eval", "Measure a checkpoint's next-token loss and perplexity on text.") { model, data, seqLen, batch, threads, json };
        command.SetAction((r, ct) => CommonOptions.RunAsync(() =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var dataPath = r.GetValue(data) ?? throw new UsageException("--data PATH is required: a .txt/.jsonl file or a directory of them");
            var (lm, tokenizer) = ModelLoading.Load(r.GetValue(model));
            using var _ = lm;
            if (tokenizer is null)
            {
                throw new UsageException("this checkpoint has no tokenizer files, so text cannot be evaluated");
            }
            if (r.GetValue(batch) <= 0)
            {
                throw new UsageException("--batch-size must be positive");
            }
            var tokens = TokenDataset.Tokenize(TextCorpus.Load(dataPath), tokenizer);
            var window = r.GetValue(seqLen) ?? Math.Min(256, lm.Config.MaxPositionEmbeddings);
            var (loss, count) = Evaluator.Evaluate(lm, tokens, window, r.GetValue(batch), ct);
            var result = new JsonObject
            {
                ["loss"] = Math.Round(loss, 5),
                ["perplexity"] = Math.Round(Math.Exp(loss), 4),
                ["tokens"] = count,
            };
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loss {loss:F4} nats/token, perplexity {Math.Exp(loss):F3} over {count:N0} tokens"));
            if (r.GetValue(json))
            {
                CommonOptions.PrintJson(result);
            }
            return Task.FromResult(0);
        }));
        return command;
    }
}
