using Microsoft.Playwright;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Node.Api;
using Pollen.Node.Status;
using Pollen.Tests.Inference;
using Pollen.Tests.Training;
using Pollen.Training.Local;

namespace Pollen.Tests.Node;

/// <summary>
/// The dashboard in a real browser (Debian's chromium, driven by Playwright) over a real two-server swarm:
/// it shows both peers and the coverage picture, plots the losses of a real training run, and a chat
/// message gets a streamed reply through the swarm. Saves a screenshot to artifacts/dashboard.png.
/// </summary>
[Collection(nameof(InferenceSerial))]
public class DashboardBrowserTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TheDashboardShowsTheSwarmThePlotAndStreamsAChatReply()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: install Debian's chromium (apt-get install chromium; .ci/run does it)");
        var losses = TrainAndEvaluate(rounds: 3, stepsPerRound: 4);
        await using var swarm = await InferenceSwarm.StartAsync(ApiFixture.Config, [(0, 1), (1, 2)]);
        using var model = swarm.Client();
        await using var directory = new DirectoryStatusSource(new NodeSummary("gateway", "", null, ["api", "train"], DateTimeOffset.UtcNow),
            new ModelSummary(ApiFixture.ModelId, model.Config.Fingerprint(), model.Config.NumHiddenLayers, model.Config.ParameterCount(), model.Config.ToString()),
            model.Directory, refresh: TimeSpan.FromHours(1));
        await directory.RefreshAsync(Ct);
        var status = new WithTraining(directory, new TrainingSummary("browser-test", losses.Count, 0, 4, 0, 0, 0, 1, losses));
        await using var server = await ApiServer.StartAsync(new ServedModel(ApiFixture.ModelId, model, ByteTokenizer.Instance),
            new ApiOptions { ListenAddress = "127.0.0.1", Port = 0 }, status: status, cancellationToken: Ct);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 900 } });
        var external = new List<string>();
        page.Request += (_, request) =>
        {
            if (!request.Url.StartsWith(server.Url.ToString(), StringComparison.Ordinal))
            {
                external.Add(request.Url);
            }
        };
        await page.GotoAsync(server.Url.ToString());

        var rows = page.Locator("#peers tbody tr");
        await rows.Nth(1).WaitForAsync();
        Assert.Equal(2, await rows.CountAsync());
        Assert.Contains(swarm.Spans[1].Address, await rows.Nth(1).InnerTextAsync());
        Assert.Equal(2, await page.Locator("#coverage rect.span").CountAsync()); // one bar per peer
        Assert.Equal(2, await page.Locator("#coverage rect[data-peers='1']").CountAsync()); // both blocks covered once
        Assert.Equal(losses.Count, await page.Locator("#loss circle.point").CountAsync());

        await page.FillAsync("#chat-input", "Hello swarm");
        await page.ClickAsync("#chat-send");
        var reply = page.Locator("#chat-log .assistant");
        await page.Locator("#chat-log .assistant[data-done]").WaitForAsync(new() { Timeout = 60_000 });
        Assert.Equal("true", await reply.GetAttributeAsync("data-done")); // not "error"
        var chunks = int.Parse(await reply.GetAttributeAsync("data-chunks") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(chunks >= 1, "the reply arrived as server-sent events");
        Assert.Empty(external);

        var shot = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(shot)!);
        await page.ScreenshotAsync(new() { Path = shot, FullPage = true });
        output.WriteLine($"screenshot: {shot}; reply in {chunks} chunks: {await reply.InnerTextAsync()}");
    }

    /// <summary>Validation losses of a real short run of the tiny model, evaluated after each round of steps.</summary>
    private static List<RoundLoss> TrainAndEvaluate(int rounds, int stepsPerRound)
    {
        using var model = new Transformer(TrainingTestData.Tiny, seed: 1);
        var options = new TrainerOptions { Steps = rounds * stepsPerRound, BatchSize = 4, LearningRate = 1e-2, EvalEvery = 1000, EvalBatches = 2, CheckpointEvery = 0 };
        using var trainer = new Trainer(model, TrainingTestData.Stories(corpusSeed: 3, dataSeed: 1), options, outDir: null);
        var losses = new List<RoundLoss>();
        for (var r = 1; r <= rounds; r++)
        {
            trainer.RunUntil(r * stepsPerRound, Ct);
            losses.Add(new RoundLoss(r, trainer.Evaluate()));
        }
        return losses;
    }

    /// <summary>A gateway's status with a training section added.</summary>
    private sealed class WithTraining(INodeStatusSource inner, TrainingSummary training) : INodeStatusSource
    {
        public NodeStatus Snapshot() => inner.Snapshot() with { Training = training };
    }
}
