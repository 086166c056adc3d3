using System.Net;

namespace Pollen.Tests.Node;

/// <summary>Bad requests get a 4xx with OpenAI's error shape, naming the field and what to change.</summary>
public sealed class ApiErrorTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    public static TheoryData<string, string, int, string?, string> BadRequests() => new()
    {
        // unknown model
        { "v1/chat/completions", """{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}""", 404, "model", "serves 'tiny-bytes'" },
        { "v1/completions", """{"model": "llama", "prompt": "Hi"}""", 404, "model", "'llama' is not served here" },
        // wrong JSON types
        { "v1/chat/completions", """{"messages": "Hi"}""", 400, "messages", "'messages' must be an array of messages, got a string" },
        { "v1/chat/completions", """{"messages": [{"role": "user", "content": 5}]}""", 400, "messages[0].content", "must be a string or an array of text parts, got a number" },
        { "v1/chat/completions", """{"messages": [{"role": "tool", "content": "x"}]}""", 400, "messages[0].role", "system, user and assistant" },
        { "v1/completions", """{"prompt": "Hi", "temperature": "hot"}""", 400, "temperature", "'temperature' must be a number, got a string" },
        { "v1/completions", """{"prompt": "Hi", "max_tokens": 2.5}""", 400, "max_tokens", "'max_tokens' must be an integer" },
        { "v1/completions", """{"prompt": "Hi", "stream": "yes"}""", 400, "stream", "'stream' must be true or false" },
        { "v1/completions", """{"prompt": "Hi", "stop": [1]}""", 400, "stop", "a string or an array of strings" },
        { "v1/completions", """{"prompt": {"text": "Hi"}}""", 400, "prompt", "a string or an array of token ids, got an object" },
        { "v1/completions", """{"prompt": [1, 99999]}""", 400, "prompt", "prompt[1] must be a token id in 0..263" },
        { "input", """{"prompt": "Hi", "do_sample": 1}""", 400, "do_sample", "'do_sample' must be true or false, got a number" },
        { "v1/completions", """["Hi"]""", 400, null, "must be a JSON object, got an array" },
        { "v1/completions", """{"prompt": "Hi",""", 400, null, "not valid JSON" },
        // missing prompt / messages
        { "v1/completions", """{"max_tokens": 5}""", 400, "prompt", "'prompt' is required" },
        { "v1/chat/completions", """{"model": "tiny-bytes"}""", 400, "messages", "'messages' is required" },
        { "v1/chat/completions", """{"messages": []}""", 400, "messages", "'messages' is empty" },
        { "v1/completions", """{"prompt": ""}""", 400, "prompt", "'prompt' is empty" },
        { "input", """{"max_new_tokens": 5}""", 400, "prompt", "'prompt' is required" },
        // the context (96 tokens)
        { "v1/completions", $$"""{"prompt": "{{new string('a', 96)}}"}""", 400, "prompt", "the prompt is 96 tokens but the context of model 'tiny-bytes' is 96 tokens" },
        { "v1/completions", """{"prompt": "Hello", "max_tokens": 92}""", 400, "max_tokens", "set 'max_tokens' to at most 91" },
        { "v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 200}""", 400, "max_completion_tokens", "more than the context of model 'tiny-bytes' (96 tokens)" },
        { "input", """{"prompt": "Hello", "max_new_tokens": 1000}""", 400, "max_new_tokens", "(5 tokens) plus 'max_new_tokens' (1000) is 1005 tokens" },
        // values out of range
        { "v1/completions", """{"prompt": "Hi", "temperature": -0.5}""", 400, "temperature", "'temperature' must be between 0 and 2 (0 = greedy) (got -0.5)" },
        { "v1/completions", """{"prompt": "Hi", "top_p": 0}""", 400, "top_p", "'top_p' must be in (0, 1] (got 0)" },
        { "v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}], "top_p": 1.5}""", 400, "top_p", "in (0, 1]" },
        { "v1/completions", """{"prompt": "Hi", "max_tokens": 0}""", 400, "max_tokens", "'max_tokens' must be at least 1 (got 0)" },
        { "v1/completions", """{"prompt": "Hi", "max_tokens": -3}""", 400, "max_tokens", "at least 1 (got -3)" },
        { "v1/completions", """{"prompt": "Hi", "top_k": -2}""", 400, "top_k", "'top_k' must be an integer" },
        { "v1/completions", """{"prompt": "Hi", "repetition_penalty": 0}""", 400, "repetition_penalty", "above 0" },
        { "v1/completions", """{"prompt": "Hi", "stop": ["a", "b", "c", "d", "e"]}""", 400, "stop", "give at most 4" },
        { "v1/completions", """{"prompt": "Hi", "stop": ""}""", 400, "stop", "must not contain an empty string" },
        { "input", """{"prompt": "Hi", "max_new_tokens": 0}""", 400, "max_new_tokens", "at least 1" },
        { "input", """{"prompt": "Hi", "do_sample": true, "temperature": 0}""", 400, "temperature", "\"do_sample\": false" },
        { "input", """{"prompt": "Hi", "top_p": 2}""", 400, "top_p", "in (0, 1]" },
        // what this server cannot honour is refused, not ignored
        { "v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}], "n": 2}""", 400, "n", "send 1" },
        { "v1/completions", """{"prompt": "Hi", "echo": true}""", 400, "echo", "not supported" },
        { "v1/completions", """{"prompt": "Hi", "presence_penalty": 0.5}""", 400, "presence_penalty", "use 'repetition_penalty'" },
        { "v1/completions", """{"prompt": "Hi", "frequency_penalty": 3}""", 400, "frequency_penalty", "between -2 and 2" },
        { "v1/completions", """{"prompt": ["a", "b"]}""", 400, "prompt", "one prompt per request" },
        { "v1/chat/completions", """{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}""", 400, "messages[0].content", "text parts only" },
        { "v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function"}]}""", 400, "tools", "no tool calling" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task BadRequestGetsAnOpenAiErrorSayingWhatToChange(string path, string json, int status, string? param, string message)
    {
        var (code, body) = await api.PostAsync(path, json);
        Assert.Equal(status, (int)code);
        var error = body!["error"]!;
        Assert.Contains(message, (string?)error["message"], StringComparison.Ordinal);
        Assert.Equal(param, (string?)error["param"]);
        Assert.Equal("invalid_request_error", (string?)error["type"]);
        Assert.True(error.AsObject().ContainsKey("code"));
        if (path == "input")
        {
            Assert.False((bool)body["ok"]!);
        }
    }

    [Fact]
    public async Task OversizedBodyIsA413()
    {
        await using var server = await ApiFixture.StartAsync(new Pollen.Node.Api.ServedModel("small", api.Model, Pollen.Model.Tokenizers.ByteTokenizer.Instance), maxBodyBytes: 4096);
        using var http = new HttpClient { BaseAddress = server.Url };
        // a small overshoot: the server reads the rest of the body in one go before closing, so the client sees the 413, not a reset
        var json = $$"""{"prompt": "{{new string('a', 4200)}}"}""";
        var (status, body) = await ApiFixture.PostAsync(http, "v1/completions", json);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("larger than 4096 bytes", (string?)body!["error"]!["message"], StringComparison.Ordinal);
        Assert.Equal("request_too_large", (string?)body["error"]!["code"]);
    }

    [Fact]
    public async Task UnknownPathIsA404AndWrongMethodA405()
    {
        using var missing = await api.Http.GetAsync("v1/embeddings", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("POST /v1/chat/completions", await missing.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
        using var wrong = await api.Http.GetAsync("v1/chat/completions", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrong.StatusCode);
        Assert.Contains("use POST", await wrong.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
        using var model = await api.Http.GetAsync("v1/models/other", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, model.StatusCode);
    }
}
