using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Pollen.Inference.Routing;
using Pollen.Model.Tokenizers;
using Pollen.Node.Api;
using Pollen.Node.Dashboard;
using Pollen.Node.Status;
using Pollen.Tests.Inference;

namespace Pollen.Tests.Node;

/// <summary>The dashboard page, /api/status, /metrics and /healthz of an API gateway over a real two-server swarm.</summary>
[Collection(nameof(InferenceSerial))]
public partial class DashboardTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task StatusMetricsAndHealthDescribeTheSwarmAndThePageIsSelfContained()
    {
        await using var swarm = await InferenceSwarm.StartAsync(ApiFixture.Config, [(0, 1), (1, 2)]);
        using var model = swarm.Client();
        await using var status = Source(model.Directory, model.Config);
        await status.RefreshAsync(Ct);
        await using var server = await ApiServer.StartAsync(new ServedModel(ApiFixture.ModelId, model, ByteTokenizer.Instance),
            new ApiOptions { ListenAddress = "127.0.0.1", Port = 0 }, status: status, cancellationToken: Ct);
        using var http = new HttpClient { BaseAddress = server.Url };

        var json = JsonNode.Parse(await http.GetStringAsync("api/status", Ct))!;
        Assert.Equal(ApiFixture.ModelId, json["model"]!["model_id"]!.GetValue<string>());
        Assert.Equal(2, json["model"]!["num_blocks"]!.GetValue<int>());
        var peers = json["peers"]!.AsArray();
        Assert.Equal([(swarm.Spans[0].Address, 0, 1), (swarm.Spans[1].Address, 1, 2)],
            peers.Select(p => (p!["address"]!.GetValue<string>(), p["start_block"]!.GetValue<int>(), p["end_block"]!.GetValue<int>())));

        using var metricsResponse = await http.GetAsync("metrics", Ct);
        Assert.StartsWith("text/plain", metricsResponse.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        var metrics = ParseMetrics(await metricsResponse.Content.ReadAsStringAsync(Ct));
        Assert.Equal(2, metrics["pollen_peers"].Single());
        Assert.Equal(2, metrics["pollen_blocks_covered"].Single());
        Assert.Equal([1, 1], metrics["pollen_peer_blocks"]);

        using var health = await http.GetAsync("healthz", Ct);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("ok", JsonNode.Parse(await health.Content.ReadAsStringAsync(Ct))!["status"]!.GetValue<string>());

        using var page = await http.GetAsync("", Ct);
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        var html = await page.Content.ReadAsStringAsync(Ct);
        Assert.Contains("Block coverage", html, StringComparison.Ordinal);
        Assert.Contains("v1/chat/completions", html, StringComparison.Ordinal); // the chat box streams through the API
        Assert.Empty(ExternalResource().Matches(html)); // nothing fetched from elsewhere: no CDN
    }

    [Fact]
    public async Task HealthIsUnavailableAndNamesTheBlocksNoPeerServes()
    {
        await using var swarm = await InferenceSwarm.StartAsync(ApiFixture.Config, [(0, 1)]);
        await using var status = Source(new StaticServerDirectory(swarm.Spans), ApiFixture.Config);
        await status.RefreshAsync(Ct);
        var (code, body) = DashboardEndpoints.Health(status);
        Assert.Equal(503, code);
        Assert.Equal("degraded", body["status"]!.GetValue<string>());
        Assert.Equal("1:2", body["missing_blocks"]!.GetValue<string>());
    }

    [Fact]
    public void MetricsFollowTheExpositionFormat()
    {
        var status = new NodeStatus
        {
            Time = DateTimeOffset.UnixEpoch.AddSeconds(100),
            Node = new NodeSummary("peer\"with\\odd\nchars", "127.0.0.1:1", null, ["api"], DateTimeOffset.UnixEpoch),
            Model = new ModelSummary("m", "f", 4, 10, "d"),
            Peers = [new PeerSummary("a", "h:1", 0, 3, 12.5, DateTimeOffset.UnixEpoch, false)],
            Training = new TrainingSummary("run", 2, 0, 50, 100, 10, 20, 3, [new RoundLoss(1, 2.5), new RoundLoss(2, 2.25)]),
        };
        var text = PrometheusText.Format(status);
        Assert.Contains("peer_id=\"peer\\\"with\\\\odd\\nchars\"", text, StringComparison.Ordinal);
        var metrics = ParseMetrics(text);
        Assert.Equal(100, metrics["pollen_uptime_seconds"].Single());
        Assert.Equal(3, metrics["pollen_blocks_covered"].Single());
        Assert.Equal(2.25, metrics["pollen_training_loss"].Single());
        Assert.Equal(2, metrics["pollen_training_round"].Single());
        Assert.False(metrics.ContainsKey("pollen_sessions_open")); // no serving section, no serving metrics
    }

    private static DirectoryStatusSource Source(IServerDirectory directory, Pollen.Model.Config.ModelConfig config) =>
        new(new NodeSummary("gateway", "", null, ["api"], DateTimeOffset.UtcNow),
            new ModelSummary(ApiFixture.ModelId, config.Fingerprint(), config.NumHiddenLayers, config.ParameterCount(), config.ToString()),
            directory, refresh: TimeSpan.FromHours(1));

    /// <summary>Samples by metric name, checking that every sample's family was declared with HELP and TYPE first.</summary>
    private static Dictionary<string, List<double>> ParseMetrics(string text)
    {
        var declared = new HashSet<string>();
        var samples = new Dictionary<string, List<double>>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Assert.Contains(parts[3], new[] { "gauge", "counter" });
                declared.Add(parts[2]);
                continue;
            }
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                continue;
            }
            var match = Sample().Match(line);
            Assert.True(match.Success, $"not a sample line: {line}");
            var name = match.Groups["name"].Value;
            Assert.Contains(name, declared);
            samples.TryAdd(name, []);
            samples[name].Add(double.Parse(match.Groups["value"].Value, System.Globalization.CultureInfo.InvariantCulture));
        }
        return samples;
    }

    [GeneratedRegex("""^(?<name>[a-z_]+)\{([a-z_]+="([^"\\]|\\.)*",?)*\} (?<value>\S+)$""")]
    private static partial Regex Sample();

    [GeneratedRegex("""(src|href)\s*=\s*["']?(https?:)?//|@import|<link""", RegexOptions.IgnoreCase)]
    private static partial Regex ExternalResource();
}
