using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI.Chat;
using OpenAI.Models;
using Pollen.Model.Generation;
using Pollen.Model.Tokenizers;
using Pollen.Node.Api;

namespace Pollen.Tests.Node;

/// <summary>The API as the official OpenAI .NET client sees it; every answer is checked against local generation.</summary>
public sealed class OpenAiApiTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    private static readonly ChatMessage[] Conversation = [new SystemChatMessage("Be brief."), new UserChatMessage("Hi there")];

    private static readonly string ConversationPrompt = ChatPrompt.Format(
        [new(ChatPrompt.Role.System, "Be brief."), new(ChatPrompt.Role.User, "Hi there")]);

    private static readonly ChatCompletionOptions Greedy = new() { Temperature = 0, MaxOutputTokenCount = 24 };

    private static readonly GenerationOptions LocalGreedy = new() { MaxNewTokens = 24, StopStrings = [ChatPrompt.UserTurn] };

    private ChatClient Chat => ApiFixture.Chat(api.Server.Url);

    [Fact]
    public void ChatPromptIsOneLinePerTurnEndingWithAssistant()
    {
        Assert.Equal("System: Be brief.\nUser: Hi there\nAssistant:", ConversationPrompt);
    }

    [Fact]
    public async Task GreedyChatEqualsLocalGreedyGeneration()
    {
        var local = await api.LocalAsync(ConversationPrompt, LocalGreedy);
        ChatCompletion reply = await Chat.CompleteChatAsync(Conversation, Greedy, TestContext.Current.CancellationToken);

        Assert.NotEmpty(local.Text.Trim());
        Assert.Equal(local.Text.TrimStart(), Assert.Single(reply.Content).Text);
        Assert.Equal(ChatMessageRole.Assistant, reply.Role);
        Assert.Equal(local.Finish == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop, reply.FinishReason);
        Assert.Equal(ConversationPrompt.Length, reply.Usage.InputTokenCount); // one byte, one token
        Assert.Equal(local.Ids.Count, reply.Usage.OutputTokenCount);
        Assert.Equal(ApiFixture.ModelId, reply.Model);
        Assert.StartsWith("chatcmpl-", reply.Id, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StreamedChatDeltasConcatenateToTheGreedyReply()
    {
        var local = await api.LocalAsync(ConversationPrompt, LocalGreedy);
        var text = new StringBuilder();
        var updates = new List<StreamingChatCompletionUpdate>();
        await foreach (var update in Chat.CompleteChatStreamingAsync(Conversation, Greedy, TestContext.Current.CancellationToken))
        {
            updates.Add(update);
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }
        Assert.Equal(local.Text.TrimStart(), text.ToString());
        Assert.Equal(ChatMessageRole.Assistant, updates[0].Role);
        // the client asks for usage when streaming: it comes last, after the chunk with the finish reason
        Assert.Equal(local.Ids.Count, updates[^1].Usage.OutputTokenCount);
        Assert.Equal(local.Finish == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop, updates[^2].FinishReason);
        Assert.All(updates.SkipLast(2), u => Assert.Null(u.FinishReason));
        Assert.Single(updates.Select(u => u.CompletionId).Distinct());
    }

    [Fact]
    public async Task StreamIsOpenAisChunkSequenceEndingWithDone()
    {
        using var content = new StringContent("""
            {"model": "tiny-bytes", "messages": [{"role": "user", "content": "Hi there"}], "temperature": 0, "max_tokens": 6,
             "stream": true, "stream_options": {"include_usage": true}}
            """, Encoding.UTF8, "application/json");
        using var response = await api.Http.PostAsync("v1/chat/completions", content, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e, StringComparison.Ordinal));
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", (string?)c["object"]));

        var first = chunks[0]["choices"]![0]!;
        Assert.Equal("assistant", (string?)first["delta"]!["role"]);
        Assert.Equal("", (string?)first["delta"]!["content"]);
        Assert.Null(first["finish_reason"]);
        var usage = chunks[^1];
        Assert.Empty(usage["choices"]!.AsArray());
        var finish = chunks[^2]["choices"]![0]!;
        Assert.Empty(finish["delta"]!.AsObject());
        Assert.Contains((string?)finish["finish_reason"], new[] { "stop", "length" });
        var deltas = chunks[1..^2].Select(c => c["choices"]![0]!).ToList();
        Assert.All(deltas, d => Assert.Null(d["finish_reason"]));
        Assert.All(deltas, d => Assert.Null(d["delta"]!["role"]));
        var streamed = string.Concat(deltas.Select(d => (string?)d["delta"]!["content"]));

        var local = await api.LocalAsync(ChatPrompt.Format([new(ChatPrompt.Role.User, "Hi there")]), LocalGreedy with { MaxNewTokens = 6 });
        Assert.Equal(local.Text.TrimStart(), streamed);
        Assert.Equal(local.Ids.Count, (int)usage["usage"]!["completion_tokens"]!);
        Assert.Equal(local.Finish == FinishReason.Length ? "length" : "stop", (string?)finish["finish_reason"]);
    }

    [Fact]
    public async Task ModelsListsTheServedModel()
    {
        var client = new OpenAIModelClient(new ApiKeyCredential("unused"), ApiFixture.Options(api.Server.Url));
        OpenAIModelCollection models = await client.GetModelsAsync(TestContext.Current.CancellationToken);
        var model = Assert.Single(models);
        Assert.Equal(ApiFixture.ModelId, model.Id);
        Assert.Equal("pollen", model.OwnedBy);
        OpenAIModel one = await client.GetModelAsync(ApiFixture.ModelId, TestContext.Current.CancellationToken);
        Assert.Equal(ApiFixture.ModelId, one.Id);
    }

    [Fact]
    public async Task UnknownModelIsA404NamingTheServedModel()
    {
        var e = await Assert.ThrowsAsync<ClientResultException>(() =>
            ApiFixture.Chat(api.Server.Url, "gpt-4o").CompleteChatAsync(Conversation, Greedy, TestContext.Current.CancellationToken));
        Assert.Equal(404, e.Status);
        Assert.Contains("'gpt-4o'", e.Message, StringComparison.Ordinal);
        Assert.Contains($"'{ApiFixture.ModelId}'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompletionEqualsLocalGreedyWithUsageAndFinishReason()
    {
        const string prompt = "Once upon a time";
        var local = await api.LocalAsync(prompt, new GenerationOptions { MaxNewTokens = 12 });
        var (status, body) = await api.PostAsync("v1/completions",
            """{"model": "tiny-bytes", "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("text_completion", (string?)body!["object"]);
        var choice = body["choices"]![0]!;
        Assert.Equal(local.Text, (string?)choice["text"]);
        Assert.Equal(local.Finish == FinishReason.Length ? "length" : "stop", (string?)choice["finish_reason"]);
        Assert.Equal(prompt.Length, (int)body["usage"]!["prompt_tokens"]!);
        Assert.Equal(local.Ids.Count, (int)body["usage"]!["completion_tokens"]!);
        Assert.Equal(prompt.Length + local.Ids.Count, (int)body["usage"]!["total_tokens"]!);
    }

    [Fact]
    public async Task CompletionStopsAtAStopStringWithoutReturningIt()
    {
        var full = await api.LocalAsync("Once upon a time", new GenerationOptions { MaxNewTokens = 30, StopAtEos = false });
        var stop = full.Text.Substring(6, 2); // a string the greedy text reaches
        var expected = full.Text[..full.Text.IndexOf(stop, StringComparison.Ordinal)];
        var (status, body) = await api.PostAsync("v1/completions",
            new JsonObject { ["prompt"] = "Once upon a time", ["max_tokens"] = 30, ["temperature"] = 0, ["stop"] = new JsonArray(stop, "never-produced") }.ToJsonString());
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(expected, (string?)body!["choices"]![0]!["text"]);
        Assert.Equal("stop", (string?)body["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task StreamedCompletionConcatenatesToTheNonStreamedOne()
    {
        const string request = """{"prompt": "Once upon a time", "max_tokens": 10, "temperature": 0.9, "top_k": 20, "seed": 11, "return_token_ids": true""";
        var (_, whole) = await api.PostAsync("v1/completions", request + "}");
        using var content = new StringContent(request + ", \"stream\": true}", Encoding.UTF8, "application/json");
        using var response = await api.Http.PostAsync("v1/completions", content, TestContext.Current.CancellationToken);
        var events = (await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var choices = events[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!["choices"]![0]!).ToList();
        Assert.Equal((string?)whole!["choices"]![0]!["text"], string.Concat(choices.Select(c => (string?)c["text"])));
        Assert.Equal(whole["choices"]![0]!["token_ids"]!.AsArray().Select(i => (int)i!), choices.SelectMany(c => c["token_ids"]!.AsArray().Select(i => (int)i!)));
        Assert.Equal((string?)whole["choices"]![0]!["finish_reason"], (string?)choices[^1]["finish_reason"]);
        Assert.All(choices.SkipLast(1), c => Assert.Null(c["finish_reason"]));

        // the same seed gives the same sample locally
        var local = await api.LocalAsync("Once upon a time", new GenerationOptions { MaxNewTokens = 10, Temperature = 0.9, TopK = 20, Seed = 11 });
        Assert.Equal(local.Ids, whole["choices"]![0]!["token_ids"]!.AsArray().Select(i => (int)i!));
    }

    [Fact]
    public async Task TokenIdPromptContinuesLikeTheSameText()
    {
        var ids = ByteTokenizer.Instance.Encode("Once upon a time");
        var (_, fromText) = await api.PostAsync("v1/completions", """{"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0, "return_token_ids": true}""");
        var (status, fromIds) = await api.PostAsync("v1/completions",
            new JsonObject { ["prompt"] = new JsonArray([.. ids.Select(i => (JsonNode)i)]), ["max_tokens"] = 8, ["temperature"] = 0, ["return_token_ids"] = true }.ToJsonString());
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(fromText!["choices"]![0]!["token_ids"]!.ToJsonString(), fromIds!["choices"]![0]!["token_ids"]!.ToJsonString());
        Assert.Equal(8, fromIds["choices"]![0]!["token_ids"]!.AsArray().Count);
    }

    [Fact]
    public async Task InputEndpointGreedyEqualsLocalGreedy()
    {
        var local = await api.LocalAsync("Once upon a time", new GenerationOptions { MaxNewTokens = 15 });
        var (status, body) = await api.PostAsync("input", """{"prompt": "Once upon a time", "max_new_tokens": 15, "do_sample": false, "temperature": 0.7}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True((bool)body!["ok"]!);
        Assert.Equal(local.Text, (string?)body["outputs"]);

        // do_sample with Hugging Face's defaults (top_k 50) and a seed
        var sampled = await api.LocalAsync("Once upon a time", new GenerationOptions { MaxNewTokens = 15, Temperature = 1.3, TopK = 50, Seed = 4 });
        var (_, sampledBody) = await api.PostAsync("input", """{"prompt": "Once upon a time", "max_new_tokens": 15, "do_sample": true, "temperature": 1.3, "seed": 4}""");
        Assert.Equal(sampled.Text, (string?)sampledBody!["outputs"]);
    }

    [Fact]
    public async Task ModelWithoutTokenizerTakesTokenIdPromptsOnly()
    {
        await using var server = await ApiFixture.StartAsync(new ServedModel("ids-only", api.Model, tokenizer: null));
        using var http = new HttpClient { BaseAddress = server.Url };
        var (status, body) = await ApiFixture.PostAsync(http, "v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("has no tokenizer", (string?)body!["error"]!["message"], StringComparison.Ordinal);

        var local = await TextGenerator.GenerateToEndAsync(api.Model, null, [72, 105], new GenerationOptions { MaxNewTokens = 6 }, TestContext.Current.CancellationToken);
        (status, body) = await ApiFixture.PostAsync(http, "v1/completions", """{"prompt": [72, 105], "max_tokens": 6, "temperature": 0, "return_token_ids": true}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(local.Ids, body!["choices"]![0]!["token_ids"]!.AsArray().Select(i => (int)i!));
        Assert.Equal("", (string?)body["choices"]![0]!["text"]);
    }
}
