using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Pollen.Model;
using Pollen.Model.Config;
using Pollen.Model.Generation;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Node.Api;

namespace Pollen.Tests.Node;

/// <summary>
/// An <see cref="ApiServer"/> on 127.0.0.1 (ephemeral port) serving a tiny byte-level model with large
/// random weights (peaked, varied predictions), and the clients to call it.
/// </summary>
public sealed class ApiFixture : IAsyncLifetime
{
    public const string ModelId = "tiny-bytes";

    public static ModelConfig Config { get; } = new()
    {
        HiddenSize = 32,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        HeadDim = 8,
        IntermediateSize = 64,
        VocabSize = ModelPresets.ByteVocabSize,
        MaxPositionEmbeddings = 96,
        TieWordEmbeddings = true,
        EosTokenIds = [ByteTokenizer.EosTokenId],
        InitializerRange = 0.5,
    };

    public Transformer Model { get; } = CreateModel();

    public ApiServer Server { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public static Transformer CreateModel()
    {
        var model = new Transformer(Config, seed: 5);
        model.eval();
        return model;
    }

    public async ValueTask InitializeAsync()
    {
        Server = await StartAsync(new ServedModel(ModelId, Model, ByteTokenizer.Instance));
        Http = new HttpClient { BaseAddress = Server.Url };
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Model.Dispose();
    }

    /// <summary>A server on an ephemeral port of 127.0.0.1.</summary>
    public static Task<ApiServer> StartAsync(ServedModel model, long maxBodyBytes = 1 << 20) =>
        ApiServer.StartAsync(model, new ApiOptions { ListenAddress = "127.0.0.1", Port = 0, MaxRequestBodyBytes = maxBodyBytes },
            cancellationToken: TestContext.Current.CancellationToken);

    /// <summary>The official OpenAI client pointed at <paramref name="baseUrl"/> (no retries, so failures show at once).</summary>
    public static ChatClient Chat(Uri baseUrl, string model = ModelId) =>
        new(model, new ApiKeyCredential("unused"), Options(baseUrl));

    public static OpenAIClientOptions Options(Uri baseUrl) => new()
    {
        Endpoint = new Uri(baseUrl, "v1"),
        RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(maxRetries: 0),
    };

    /// <summary>Posts <paramref name="json"/> and returns the status and the parsed body.</summary>
    public static async Task<(HttpStatusCode Status, JsonNode? Body)> PostAsync(HttpClient http, string path, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await http.PostAsync(path, content, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    public Task<(HttpStatusCode Status, JsonNode? Body)> PostAsync(string path, string json) => PostAsync(Http, path, json);

    /// <summary>What local generation gives for <paramref name="prompt"/>.</summary>
    public Task<GenerationResult> LocalAsync(string prompt, GenerationOptions options) =>
        LocalAsync(Model, prompt, options);

    public static Task<GenerationResult> LocalAsync(ICausalLM model, string prompt, GenerationOptions options) =>
        TextGenerator.GenerateToEndAsync(model, ByteTokenizer.Instance, ByteTokenizer.Instance.Encode(prompt), options, TestContext.Current.CancellationToken);
}
