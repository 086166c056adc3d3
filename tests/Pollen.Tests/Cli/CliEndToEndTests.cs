using System.Diagnostics;
using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Tests.Model.Checkpoints;
using Pollen.Tests.Model.Tokenizers;
using Pollen.Training.Data;
using static TorchSharp.torch;

namespace Pollen.Tests.Cli;

/// <summary>The <c>pollen</c> command as a user runs it: separate processes, real files, JSON results.</summary>
public sealed class CliEndToEndTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "pollen-cli-" + Guid.NewGuid().ToString("N"));

    public CliEndToEndTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task TrainResumeGenerateAndEvalThroughTheCommandLine()
    {
        var run = Path.Combine(_dir, "run");
        var train = await PollenProcess.RunAsync("train", "--steps", "40", "--batch-size", "8", "--seq-len", "64", "--corpus-mb", "1", "--out", run, "--json");
        Assert.True(train.ExitCode == 0, train.Stderr);
        var t = train.Json;
        Assert.Equal(40, (int)t["steps"]!);
        var val = (double)t["val_loss"]!;
        Assert.True(val < Math.Log(264) - 1.0, $"validation loss {val} did not fall from ln(264)");
        Assert.True((double)t["tokens_per_s"]! > 0);
        foreach (var file in new[] { "config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json", "metrics.jsonl", "pollen_tokenizer.json" })
        {
            Assert.True(File.Exists(Path.Combine(run, file)), file);
        }

        // running again into the same directory without --resume is refused, with the fix named
        var again = await PollenProcess.RunAsync("train", "--steps", "50", "--batch-size", "8", "--seq-len", "64", "--corpus-mb", "1", "--out", run);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("--resume", again.Stderr);

        var resumed = await PollenProcess.RunAsync("train", "--steps", "50", "--batch-size", "8", "--seq-len", "64", "--corpus-mb", "1", "--out", run, "--resume", "--json");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal(50, (int)resumed.Json["steps"]!);
        Assert.Contains("resumed from", resumed.Stderr);

        // seeded sampling is reproducible across processes
        string[] generate = ["generate", "--model", run, "--prompt", "Once upon", "--max-new-tokens", "24", "--temperature", "0.9", "--seed", "3", "--json"];
        var g1 = await PollenProcess.RunAsync(generate);
        var g2 = await PollenProcess.RunAsync(generate);
        Assert.True(g1.ExitCode == 0, g1.Stderr);
        Assert.Equal(g1.Json["ids"]!.ToJsonString(), g2.Json["ids"]!.ToJsonString());
        var text = (string)g1.Json["text"]!;
        Assert.StartsWith("Once upon" + text, g1.Stdout, StringComparison.Ordinal); // streamed text precedes the JSON
        Assert.Equal("Once upon".Length, g1.Json["prompt_ids"]!.AsArray().Count);

        // raw ids in, ids out
        var ids = await PollenProcess.RunAsync("generate", "--model", run, "--prompt-ids", "79,110,99,101", "--temperature", "0", "--max-new-tokens", "5", "--json");
        Assert.True(ids.ExitCode == 0, ids.Stderr);
        Assert.Equal(5, ids.Json["ids"]!.AsArray().Count);

        var data = Path.Combine(_dir, "held-out.txt");
        await File.WriteAllTextAsync(data, SyntheticCorpus.Generate(seed: 77, targetBytes: 20_000), TestContext.Current.CancellationToken);
        var eval = await PollenProcess.RunAsync("eval", "--model", run, "--data", data, "--seq-len", "64", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        var loss = (double)eval.Json["loss"]!;
        Assert.Equal(Math.Exp(loss), (double)eval.Json["perplexity"]!, 2);
        Assert.True(loss < Math.Log(264) - 1.0);
        Assert.True((long)eval.Json["tokens"]! > 10_000);
    }

    [Fact]
    public async Task SigtermStopsTrainingWithASavedCheckpointThatResumes()
    {
        var run = Path.Combine(_dir, "interrupted");
        string[] args = ["train", "--steps", "100000", "--batch-size", "4", "--seq-len", "64", "--corpus-mb", "1", "--out", run];
        using var process = PollenProcess.Start(args);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var metrics = Path.Combine(run, "metrics.jsonl");
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (!(File.Exists(metrics) && File.ReadLines(metrics).Count() >= 3))
        {
            Assert.True(DateTime.UtcNow < deadline && !process.HasExited, "training did not start");
            await Task.Delay(50, TestContext.Current.CancellationToken); // polling a file written by another process
        }
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
        }
        await PollenProcess.WaitAsync(process, TimeSpan.FromMinutes(1));
        Assert.Equal(130, process.ExitCode);
        var output = await stdout;
        Assert.Contains("--resume", output);
        var state = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(run, "trainer_state.json"), TestContext.Current.CancellationToken))!;
        var step = (long)state["step"]!;
        Assert.InRange(step, 3, 1000);
        _ = await stderr;

        var resumed = await PollenProcess.RunAsync("train", "--steps", (step + 2).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--batch-size", "4", "--seq-len", "64", "--corpus-mb", "1", "--out", run, "--resume", "--json");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal(step + 2, (long)resumed.Json["steps"]!);
    }

    [Fact]
    public async Task HuggingFaceLlamaCheckpointGeneratesWithAndWithoutTokenizerFiles()
    {
        var dir = Path.Combine(_dir, "hf-llama");
        Directory.CreateDirectory(dir);
        const string tokenizerConfig = """{"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>"}""";
        var tokenizerJson = TestTokenizerFiles.SentencePiece();
        var tokenizer = HfTokenizer.FromJson(tokenizerJson, tokenizerConfig);
        var config = HfLlamaLayout.SmallLlama(vocabSize: tokenizer.VocabSize, context: 128, bos: 1, 2);
        using (var scope = NewDisposeScope())
        {
            manual_seed(9);
            using var model = new Transformer(config);
            SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to(bfloat16)));
        }
        HfLlamaLayout.WriteConfig(dir, config);
        await File.WriteAllTextAsync(Path.Combine(dir, "tokenizer.json"), tokenizerJson, TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(Path.Combine(dir, "tokenizer_config.json"), tokenizerConfig, TestContext.Current.CancellationToken);

        var text = await PollenProcess.RunAsync("generate", "--model", dir, "--prompt", "hello world", "--max-new-tokens", "8", "--temperature", "0", "--json");
        Assert.True(text.ExitCode == 0, text.Stderr);
        int[] expectedPrompt = [1, .. tokenizer.Encode("hello world")]; // the tokenizer config asks for BOS
        Assert.Equal(expectedPrompt, text.Json["prompt_ids"]!.AsArray().Select(n => (int)n!));
        Assert.InRange(text.Json["ids"]!.AsArray().Count, 1, 8);

        File.Delete(Path.Combine(dir, "tokenizer.json"));
        File.Delete(Path.Combine(dir, "tokenizer_config.json"));
        var noTokenizer = await PollenProcess.RunAsync("generate", "--model", dir, "--prompt", "hello");
        Assert.Equal(2, noTokenizer.ExitCode);
        Assert.Contains("--prompt-ids", noTokenizer.Stderr);
        var ids = await PollenProcess.RunAsync("generate", "--model", dir, "--prompt-ids", "1,5,9,14", "--max-new-tokens", "6", "--temperature", "0", "--json");
        Assert.True(ids.ExitCode == 0, ids.Stderr);
        Assert.Null(ids.Json["text"]);
        var generated = ids.Json["ids"]!.AsArray().Select(n => (int)n!).ToArray();
        Assert.True(generated.Length == 6 || (generated.Length < 6 && generated[^1] == 2), $"generated [{string.Join(",", generated)}]");
        Assert.Equal(string.Join(",", generated), ids.Stdout.Split('\n')[0].Trim()); // ids are streamed when there is no tokenizer
    }

    [Fact]
    public async Task BadInputGetsAClearMessageAndNonZeroExit()
    {
        var missing = await PollenProcess.RunAsync("generate", "--model", Path.Combine(_dir, "nope"), "--prompt", "x");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("no such directory", missing.Stderr);

        var broken = Path.Combine(_dir, "broken");
        Directory.CreateDirectory(broken);
        await File.WriteAllTextAsync(Path.Combine(broken, "config.json"), "{\"hidden_size\": 64, \"num_hidden_layers\": 2}", TestContext.Current.CancellationToken);
        var config = await PollenProcess.RunAsync("generate", "--model", broken, "--prompt", "x");
        Assert.Equal(1, config.ExitCode);
        Assert.Contains("num_attention_heads", config.Stderr);
        Assert.DoesNotContain("   at ", config.Stderr); // no stack trace

        var preset = await PollenProcess.RunAsync("train", "--config", "enormous", "--out", Path.Combine(_dir, "x"));
        Assert.Equal(2, preset.ExitCode);
        Assert.Contains("dev, small, base", preset.Stderr);
    }
}
