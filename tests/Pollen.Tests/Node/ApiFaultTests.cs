using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Pollen.Model;
using Pollen.Model.Config;
using Pollen.Model.Generation;
using Pollen.Model.Tokenizers;
using Pollen.Node.Api;
using Pollen.Swarm;
using static TorchSharp.torch;

namespace Pollen.Tests.Node;

/// <summary>A swarm that cannot serve gives 503 naming the missing blocks; requests run concurrently.</summary>
public sealed class ApiFaultTests : IDisposable
{
    private const string Missing = "no reachable server hosts block 1 (blocks 1..1 are missing); start one with 'pollen serve --blocks 1:2'";

    private readonly Pollen.Model.Llama.Transformer _inner = ApiFixture.CreateModel();

    public void Dispose() => _inner.Dispose();

    [Theory]
    [InlineData("v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}""")]
    [InlineData("v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "stream": true}""")]
    [InlineData("v1/completions", """{"prompt": "Hi", "max_tokens": 5, "stream": true}""")]
    [InlineData("input", """{"prompt": "Hi", "max_new_tokens": 5}""")]
    public async Task SwarmUnavailableIsA503NamingTheMissingBlocks(string path, string json)
    {
        var model = new FaultyModel(_inner, failAtStep: 0);
        await using var server = await ApiFixture.StartAsync(new ServedModel("swarm", model, ByteTokenizer.Instance));
        using var http = new HttpClient { BaseAddress = server.Url };
        var (status, body) = await ApiFixture.PostAsync(http, path, json);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal(Missing, (string?)body!["error"]!["message"]);
        Assert.Equal("swarm_unavailable", (string?)body["error"]!["code"]);
        Assert.Equal(1, model.SessionsDisposed);
    }

    [Fact]
    public async Task FailureMidStreamEndsTheStreamWithAnErrorEvent()
    {
        var model = new FaultyModel(_inner, failAtStep: 3);
        await using var server = await ApiFixture.StartAsync(new ServedModel("swarm", model, ByteTokenizer.Instance));
        using var http = new HttpClient { BaseAddress = server.Url };
        using var content = new StringContent("""{"prompt": "Hi", "max_tokens": 10, "temperature": 0, "stream": true}""", Encoding.UTF8, "application/json");
        using var response = await http.PostAsync("v1/completions", content, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode); // the status line went out with the first token
        var events = (await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        var last = JsonNode.Parse(events[^1]["data: ".Length..])!;
        Assert.Equal(Missing, (string?)last["error"]!["message"]);
        Assert.DoesNotContain("data: [DONE]", events);
        Assert.Equal(1, model.SessionsDisposed);
    }

    [Fact]
    public async Task ConcurrentRequestsRunTogether()
    {
        // every session waits in its first step until all four are open: serial handling would never get there
        var model = new GatedModel(_inner, sessions: 4);
        await using var server = await ApiFixture.StartAsync(new ServedModel("gated", model, ByteTokenizer.Instance));
        using var http = new HttpClient { BaseAddress = server.Url };
        string[] prompts = ["Once upon a time", "Hello", "The cat sat", "Zebra"];
        var answers = await Task.WhenAll(prompts.Select(p => ApiFixture.PostAsync(http, "input", new JsonObject { ["prompt"] = p, ["max_new_tokens"] = 12 }.ToJsonString())));
        for (var i = 0; i < prompts.Length; i++)
        {
            var local = await ApiFixture.LocalAsync(_inner, prompts[i], new GenerationOptions { MaxNewTokens = 12 });
            Assert.Equal(HttpStatusCode.OK, answers[i].Status);
            Assert.Equal(local.Text, (string?)answers[i].Body!["outputs"]);
        }
    }

    /// <summary>A model whose sessions throw <see cref="SwarmUnavailableException"/> at step <c>failAtStep</c>.</summary>
    private sealed class FaultyModel(ICausalLM inner, int failAtStep) : ICausalLM
    {
        private readonly int _failAtStep = failAtStep;
        private int _disposed;

        public ModelConfig Config => inner.Config;

        public int SessionsDisposed => Volatile.Read(ref _disposed);

        public IDecodingSession OpenSession(int maxLength) => new Session(this, inner.OpenSession(maxLength));

        private sealed class Session(FaultyModel owner, IDecodingSession inner) : IDecodingSession
        {
            private int _steps;

            public int Length => inner.Length;

            public int MaxLength => inner.MaxLength;

            public ValueTask<Tensor> ForwardAsync(Tensor ids, CancellationToken cancellationToken = default) =>
                _steps++ == owner._failAtStep ? throw new SwarmUnavailableException(Missing) : inner.ForwardAsync(ids, cancellationToken);

            public void Dispose()
            {
                inner.Dispose();
                Interlocked.Increment(ref owner._disposed);
            }
        }
    }

    /// <summary>A model whose first steps wait (with a deadline) until <c>sessions</c> sessions are open.</summary>
    private sealed class GatedModel(ICausalLM inner, int sessions) : ICausalLM
    {
        private readonly TaskCompletionSource _allOpen = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _open;

        public ModelConfig Config => inner.Config;

        public IDecodingSession OpenSession(int maxLength)
        {
            if (Interlocked.Increment(ref _open) == sessions)
            {
                _allOpen.SetResult();
            }
            return new Session(this, inner.OpenSession(maxLength));
        }

        private sealed class Session(GatedModel owner, IDecodingSession inner) : IDecodingSession
        {
            private bool _waited;

            public int Length => inner.Length;

            public int MaxLength => inner.MaxLength;

            public async ValueTask<Tensor> ForwardAsync(Tensor ids, CancellationToken cancellationToken = default)
            {
                if (!_waited)
                {
                    _waited = true;
                    await owner._allOpen.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
                }
                return await inner.ForwardAsync(ids, cancellationToken);
            }

            public void Dispose() => inner.Dispose();
        }
    }
}
