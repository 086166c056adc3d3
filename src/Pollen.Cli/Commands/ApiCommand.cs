using System.CommandLine;
using System.Text.Json.Nodes;
using Pollen.Inference.Client;
using Pollen.Inference.Routing;
using Pollen.Model;
using Pollen.Model.Tokenizers;
using Pollen.Node.Api;
using Pollen.Node.Status;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen api</c>: serves a model over an OpenAI-compatible HTTP API until stopped.</summary>
internal static class ApiCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint directory (config.json + model.safetensors [+ tokenizer files])." };
        var swarm = new SwarmLoading();
        var modelId = swarm.ModelId; // the id clients put in 'model', and the one servers announce
        var listen = new Option<string>("--listen") { Description = "Address to listen on (0.0.0.0: every interface; 127.0.0.1: this machine only).", DefaultValueFactory = _ => "0.0.0.0" };
        var port = new Option<int>("--port") { Description = "HTTP port (0 = any free port).", DefaultValueFactory = _ => new ApiOptions().Port };
        var dtype = ModelLoading.DtypeOption();
        var threads = CommonOptions.Threads();
        var verbose = new Option<bool>("--verbose") { Description = "Log every request (debug level)." };
        var json = CommonOptions.Json();
        var command = new Command("api", "Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /input) until Ctrl+C; with --initial-peers or --servers its blocks run on the swarm.")
        {
            model, listen, port, dtype, threads, verbose, json,
        };
        foreach (var option in swarm.All)
        {
            command.Options.Add(option);
        }
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var directory = r.GetValue(model);
            using var logging = NodeLogging.Create(r.GetValue(verbose));
            await using var client = swarm.Requested(r)
                ? await swarm.OpenAsync(r, directory, ModelLoading.ParseDtype(r.GetValue(dtype)), logging, ct).ConfigureAwait(false)
                : null;
            var (lm, tokenizer) = client is not null ? (client.Model, client.Tokenizer) : OpenModel(directory, ModelLoading.ParseDtype(r.GetValue(dtype)));
            using var _ = client is null ? lm as IDisposable : null;
            var id = r.GetValue(modelId) ?? ModelLoading.DefaultModelId(directory!);
            var served = new ServedModel(id, lm, tokenizer);
            var options = new ApiOptions { ListenAddress = r.GetValue(listen)!, Port = r.GetValue(port) };
            await using var status = StatusSource(client, lm, id, logging);
            await using (var server = await ApiServer.StartAsync(served, options, logging, status: status, cancellationToken: ct).ConfigureAwait(false))
            {
                var url = server.Url.ToString();
                Console.Out.WriteLine($"serving  {id} ({served.ContextLength} tokens of context{(tokenizer is null ? "; no tokenizer: token-id prompts only" : "")})");
                Console.Out.WriteLine($"url      {url}  (OpenAI base URL: {url}v1; dashboard: {url}; metrics: {url}metrics)");
                Console.Out.WriteLine($"try      curl {url}v1/chat/completions -H 'Content-Type: application/json' -d '{{\"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}], \"max_tokens\": 20}}'");
                if (r.GetValue(json))
                {
                    CommonOptions.PrintJson(new JsonObject { ["url"] = url, ["port"] = server.Url.Port, ["model_id"] = id });
                }
                await CommonOptions.RunUntilStoppedAsync(ct).ConfigureAwait(false);
                // stop taking requests before the model goes away (leaving this block)
            }
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// What the dashboard shows for this gateway: the swarm's servers as its directory lists them, or, for a
    /// local checkpoint, this process holding every block.
    /// </summary>
    private static DirectoryStatusSource StatusSource(SwarmClient? client, ICausalLM lm, string modelId, Microsoft.Extensions.Logging.ILoggerFactory logging)
    {
        var config = lm.Config;
        var model = new ModelSummary(modelId, config.Fingerprint(), config.NumHiddenLayers, config.ParameterCount(), config.ToString());
        var started = DateTimeOffset.UtcNow;
        if (client is null)
        {
            var node = new NodeSummary("local", "", null, ["api", "serve"], started);
            return new DirectoryStatusSource(node, model, new StaticServerDirectory([new ServerSpan("this process", 0, config.NumHiddenLayers)]));
        }
        var identity = new NodeSummary(client.Node?.PeerId.ToString() ?? "client", client.Node?.Address ?? "", null, ["api"], started);
        return new DirectoryStatusSource(identity, model, client.Model.Directory, logger: logging.CreateLogger("Pollen.Node.Status"));
    }

    /// <summary>The model behind the API: a local checkpoint, loaded whole.</summary>
    internal static (ICausalLM Model, ITokenizer? Tokenizer) OpenModel(string? directory, TorchSharp.torch.ScalarType dtype) =>
        ModelLoading.Load(directory, dtype);
}
