using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Pollen.Model;
using Pollen.Model.Generation;
using Pollen.Model.Tokenizers;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen generate</c>: streams a continuation of a prompt from a local checkpoint.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint directory (config.json + model.safetensors [+ tokenizer files])." };
        var prompt = new Option<string?>("--prompt") { Description = "Prompt text." };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as raw token ids, e.g. 1,2,3 (no tokenizer needed)." };
        var sampling = new SamplingOptions();
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var dtype = ModelLoading.DtypeOption();
        var swarm = new SwarmLoading();
        var verbose = new Option<bool>("--verbose") { Description = "Log swarm activity (debug level)." };
        var command = new Command("generate", "Generate text from a checkpoint, streaming tokens as they are produced; with --initial-peers or --servers the blocks run on the swarm (embedding, head and tokenizer still come from --model).")
        {
            model, prompt, promptIds, dtype, threads, json, verbose,
        };
        foreach (var option in swarm.All)
        {
            command.Options.Add(option);
        }
        sampling.AddTo(command);
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var options = sampling.Read(r);
            using var logging = NodeLogging.Create(r.GetValue(verbose), quiet: !r.GetValue(verbose));
            await using var client = swarm.Requested(r)
                ? await swarm.OpenAsync(r, r.GetValue(model), ModelLoading.ParseDtype(r.GetValue(dtype)), logging, ct).ConfigureAwait(false)
                : null;
            var (lm, tokenizer) = client is not null ? (client.Model, client.Tokenizer)
                : ((ICausalLM, ITokenizer?))ModelLoading.Load(r.GetValue(model), ModelLoading.ParseDtype(r.GetValue(dtype)));
            using var local = client is null ? (IDisposable)lm : null;
            var ids = PromptIds(r.GetValue(prompt), r.GetValue(promptIds), tokenizer);
            var result = await StreamAsync(lm, tokenizer, ids, options, Console.Out, ct).ConfigureAwait(false);
            if (r.GetValue(json))
            {
                CommonOptions.PrintJson(result);
            }
            return 0;
        }));
        return command;
    }

    /// <summary>Turns --prompt or --prompt-ids into token ids.</summary>
    public static int[] PromptIds(string? prompt, string? promptIds, ITokenizer? tokenizer)
    {
        if ((prompt is null) == (promptIds is null))
        {
            throw new UsageException("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
        }
        if (promptIds is not null)
        {
            var parts = promptIds.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var ids = new int[parts.Length];
            for (var i = 0; i < parts.Length; i++)
            {
                if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]))
                {
                    throw new UsageException($"--prompt-ids: '{parts[i]}' is not a non-negative integer");
                }
            }
            return ids.Length > 0 ? ids : throw new UsageException("--prompt-ids is empty");
        }
        if (tokenizer is null)
        {
            throw new UsageException("this checkpoint has no tokenizer files (tokenizer.json); use --prompt-ids");
        }
        var encoded = tokenizer.Encode(prompt!);
        // Hugging Face tokenizers that add BOS (Llama) expect it first; byte-level Pollen models are trained without.
        if (tokenizer is HfTokenizer { AddBosToken: true, BosId: int bos })
        {
            encoded = [bos, .. encoded];
        }
        return encoded.Length > 0 ? encoded : throw new UsageException("the prompt is empty");
    }

    /// <summary>Generates, writing text to <paramref name="output"/> as it is released; returns the JSON summary.</summary>
    public static async Task<JsonObject> StreamAsync(ICausalLM lm, ITokenizer? tokenizer, int[] ids, GenerationOptions options, TextWriter output, CancellationToken ct)
    {
        var generated = new List<int>();
        var text = new System.Text.StringBuilder();
        FinishReason? finish = null;
        var clock = Stopwatch.StartNew();
        if (tokenizer is not null)
        {
            await output.WriteAsync(tokenizer.Decode(ids)).ConfigureAwait(false);
        }
        await foreach (var token in TextGenerator.GenerateAsync(lm, tokenizer, ids, options, ct).ConfigureAwait(false))
        {
            generated.Add(token.Id);
            text.Append(token.Text);
            finish = token.Finish;
            if (tokenizer is null)
            {
                await output.WriteAsync(generated.Count == 1 ? $"{token.Id}" : $",{token.Id}").ConfigureAwait(false);
            }
            else
            {
                await output.WriteAsync(token.Text).ConfigureAwait(false);
            }
            await output.FlushAsync(ct).ConfigureAwait(false);
        }
        await output.WriteLineAsync().ConfigureAwait(false);
        var seconds = clock.Elapsed.TotalSeconds;
        return new JsonObject
        {
            ["prompt_ids"] = new JsonArray([.. ids.Select(i => (JsonNode)i)]),
            ["ids"] = new JsonArray([.. generated.Select(i => (JsonNode)i)]),
            ["text"] = tokenizer is null ? null : text.ToString(),
            ["finish_reason"] = finish?.ToString().ToLowerInvariant(),
            ["tokens_per_s"] = Math.Round(generated.Count / Math.Max(seconds, 1e-9), 2),
        };
    }
}

/// <summary>The sampling flags of <c>generate</c> and <c>demo</c>.</summary>
internal sealed class SamplingOptions
{
    private readonly Option<int> _maxNewTokens = new("--max-new-tokens") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 200 };
    private readonly Option<double> _temperature = new("--temperature") { Description = "Sampling temperature; 0 = greedy.", DefaultValueFactory = _ => 0.8 };
    private readonly Option<int> _topK = new("--top-k") { Description = "Sample among the k most likely tokens (0 = all).", DefaultValueFactory = _ => 0 };
    private readonly Option<double> _topP = new("--top-p") { Description = "Sample from the smallest set with this total probability.", DefaultValueFactory = _ => 0.95 };
    private readonly Option<double> _repetitionPenalty = new("--repetition-penalty") { Description = "Penalty > 1 discourages repeated tokens.", DefaultValueFactory = _ => 1.0 };
    private readonly Option<string[]> _stop = new("--stop") { Description = "Stop when the text contains this string (repeatable).", AllowMultipleArgumentsPerToken = false };
    private readonly Option<int> _seed = CommonOptions.Seed("sampling");

    public void AddTo(Command command)
    {
        command.Options.Add(_maxNewTokens);
        command.Options.Add(_temperature);
        command.Options.Add(_topK);
        command.Options.Add(_topP);
        command.Options.Add(_repetitionPenalty);
        command.Options.Add(_stop);
        command.Options.Add(_seed);
    }

    public GenerationOptions Read(ParseResult r)
    {
        var options = new GenerationOptions
        {
            MaxNewTokens = r.GetValue(_maxNewTokens),
            Temperature = r.GetValue(_temperature),
            TopK = r.GetValue(_topK),
            TopP = r.GetValue(_topP),
            RepetitionPenalty = r.GetValue(_repetitionPenalty),
            StopStrings = r.GetValue(_stop) ?? [],
            Seed = r.GetValue(_seed),
        };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        return options;
    }
}
