using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using OpenAI.Chat;
using Pollen.Model.Checkpoints;
using Pollen.Model.Generation;
using Pollen.Node.Api;
using Pollen.Tests.Cli;
using Pollen.Tests.Model.Checkpoints;

namespace Pollen.Tests.Node;

/// <summary><c>pollen api</c> as a separate process: it prints its URL, answers, and exits cleanly on SIGTERM.</summary>
public sealed class ApiProcessTests
{
    [Fact]
    public async Task ApiProcessAnswersAChatAndExitsOnSigterm()
    {
        using var files = new CheckpointTestFiles();
        using (var model = ApiFixture.CreateModel())
        {
            ModelCheckpoint.Save(files.Directory, model);
        }
        using var process = PollenProcess.Start("api", "--model", files.Directory, "--model-id", "tiny", "--listen", "127.0.0.1", "--port", "0", "--json");
        try
        {
            var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            var ready = await ReadJsonLineAsync(process) ?? throw new InvalidOperationException($"pollen api exited: {await stderr}");
            var url = new Uri((string)ready["url"]!);
            Assert.Equal("tiny", (string?)ready["model_id"]);
            Assert.Equal(url.Port, (int)ready["port"]!);
            Assert.NotEqual(0, url.Port);

            ChatCompletion reply = await ApiFixture.Chat(url, "tiny").CompleteChatAsync(
                [new UserChatMessage("Hi there")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 10 }, TestContext.Current.CancellationToken);
            using var local = ApiFixture.CreateModel();
            var expected = await ApiFixture.LocalAsync(local, ChatPrompt.Format([new(ChatPrompt.Role.User, "Hi there")]),
                new GenerationOptions { MaxNewTokens = 10, StopStrings = [ChatPrompt.UserTurn] });
            Assert.Equal(expected.Text.TrimStart(), Assert.Single(reply.Content).Text);

            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
            }
            await PollenProcess.WaitAsync(process, TimeSpan.FromSeconds(30));
            Assert.True(process.ExitCode == 0, await stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public async Task ApiProcessGeneratesThroughServeProcessesAndAnswers503WhenTheyAreGone()
    {
        using var files = new CheckpointTestFiles();
        using (var model = ApiFixture.CreateModel())
        {
            ModelCheckpoint.Save(files.Directory, model);
        }
        var homes = Path.Combine(files.Directory, "homes");
        var processes = new List<Process>();
        try
        {
            var first = StartTracked(processes, "serve", "--model", files.Directory, "--model-id", "tiny", "--blocks", "0:1", "--listen", "127.0.0.1", "--home", Path.Combine(homes, "a"), "--json");
            var address = (string)(await ReadJsonLineAsync(first) ?? throw new InvalidOperationException("pollen serve exited"))["address"]!;
            var second = StartTracked(processes, "serve", "--model", files.Directory, "--model-id", "tiny", "--blocks", "1:2", "--listen", "127.0.0.1", "--home", Path.Combine(homes, "b"),
                "--initial-peers", address, "--json");
            Assert.NotNull(await ReadJsonLineAsync(second));
            var api = StartTracked(processes, "api", "--model", files.Directory, "--model-id", "tiny", "--initial-peers", address, "--wait-for-blocks", "1",
                "--listen", "127.0.0.1", "--port", "0", "--json");
            var url = new Uri((string)(await ReadJsonLineAsync(api) ?? throw new InvalidOperationException("pollen api exited"))["url"]!);

            ChatCompletion reply = await ApiFixture.Chat(url, "tiny").CompleteChatAsync(
                [new UserChatMessage("Hi there")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 10 }, TestContext.Current.CancellationToken);
            using var local = ApiFixture.CreateModel();
            var expected = await ApiFixture.LocalAsync(local, ChatPrompt.Format([new(ChatPrompt.Role.User, "Hi there")]),
                new GenerationOptions { MaxNewTokens = 10, StopStrings = [ChatPrompt.UserTurn] });
            Assert.Equal(expected.Text.TrimStart(), Assert.Single(reply.Content).Text);

            second.Kill(); // SIGKILL: blocks 1.. have no server any more
            await second.WaitForExitAsync(TestContext.Current.CancellationToken);
            using var http = new HttpClient { BaseAddress = url };
            var (status, body) = await ApiFixture.PostAsync(http, "/v1/chat/completions", """{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}""");
            Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, status);
            Assert.Contains("block 1", (string)body!["error"]!["message"]!, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var process in processes)
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }
                process.Dispose();
            }
        }
    }

    private static Process StartTracked(List<Process> processes, params string[] args)
    {
        var process = PollenProcess.Start(args);
        processes.Add(process);
        return process;
    }

    private static async Task<JsonObject?> ReadJsonLineAsync(Process process)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith('{'))
            {
                return JsonNode.Parse(line)!.AsObject();
            }
        }
        return null;
    }
}
