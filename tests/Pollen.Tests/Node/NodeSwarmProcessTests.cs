using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Pollen.Tests.Cli;

namespace Pollen.Tests.Node;

/// <summary>
/// The acceptance run of <c>pollen node</c>: real OS processes on loopback. A founds the swarm, B joins;
/// they train together (rounds advance, equal parameters), each serves half the blocks, and a chat on A
/// streams through both. B is SIGKILLed — A still answers (through a follower serving B's half) — and
/// B rejoins from its home. A leaves on SIGTERM with exit code 0 and its announcement is gone long
/// before it would have expired.
/// </summary>
public sealed class NodeSwarmProcessTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "pollen-node-swarm-" + Guid.NewGuid().ToString("N"));
    private readonly List<NodeProcess> _nodes = [];

    public void Dispose()
    {
        _nodes.ForEach(n => n.Dispose());
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private NodeProcess Start(string name, params string[] args) => StartAt(name, name, args);

    /// <summary>Starts a node called <paramref name="name"/> whose home is <paramref name="home"/> under the test's directory.</summary>
    private NodeProcess StartAt(string name, string home, params string[] args)
    {
        var node = NodeProcess.Start(name, Path.Combine(_root, home), args);
        _nodes.Add(node);
        return node;
    }

    [Fact]
    public async Task TwoNodesTrainServeAndSurviveAKill()
    {
        var clock = Stopwatch.StartNew();
        var a = await Start("a", "--num-blocks", "2").ReadyAsync(Wait);
        var b = await Start("b", "--num-blocks", "2", "--initial-peers", a.SwarmAddress).ReadyAsync(Wait);

        // B took the blocks nobody served; both train, and at the same round hold the same parameters
        var bStatus = await b.WaitForStatusAsync(s => (int?)s["serving"]?["start_block"] == 2 && (int?)s["serving"]?["end_block"] == 4, Wait, "serving blocks 2..3");
        var joinedAt = NodeProcess.Round(await a.StatusAsync());
        var (_, hash) = await InSyncAsync(a, b, joinedAt + 2);
        Assert.Equal(64, hash.Length);

        // alone, A covered every block; with B serving 2..3 it announces its own half again, and once its
        // client's view of the swarm says so, a streamed chat on A runs through A's blocks 0..1 and B's 2..3
        await a.WaitForStatusAsync(s => (int?)s["serving"]?["end_block"] == 2
            && s["peers"]!.AsArray().Any(p => (bool?)p!["is_self"] == true && (int?)p["end_block"] == 2)
            && s["peers"]!.AsArray().Any(p => (bool?)p!["is_self"] != true && (int?)p!["start_block"] == 2), Wait, "A back to its own blocks 0..1 with B's 2..3 listed");
        var servedA = NodeProcess.TokensServed(await a.StatusAsync());
        var servedB = NodeProcess.TokensServed(await b.StatusAsync());
        Assert.Contains(await StreamChatAsync(a.Url), new[] { "stop", "length" });
        Assert.True(NodeProcess.TokensServed(await a.StatusAsync()) > servedA, "A's blocks stepped no tokens");
        Assert.True(NodeProcess.TokensServed(await b.StatusAsync()) > servedB, "B's blocks stepped no tokens");

        // B vanishes; A keeps answering and training: the first request through B bans it, and A, which holds
        // every block, announces B's half too until someone else serves it
        await b.KillAsync();
        var roundAtKill = NodeProcess.Round(await a.StatusAsync());
        var servedBefore = NodeProcess.TokensServed(await a.StatusAsync());
        Assert.Contains(await StreamChatAsync(a.Url), new[] { "stop", "length" });
        Assert.True(NodeProcess.TokensServed(await a.StatusAsync()) > servedBefore, "A's blocks stepped no tokens after B died");
        await a.WaitForStatusAsync(s => (int?)s["serving"]?["start_block"] == 0 && (int?)s["serving"]?["end_block"] == 4, Wait, "A announcing every block");
        Assert.Contains(await StreamChatAsync(a.Url), new[] { "stop", "length" });
        await a.WaitForStatusAsync(s => NodeProcess.Round(s) >= roundAtKill + 2, Wait, "rounds after B was killed");

        // B restarts from its home and rejoins the run
        var bRound = NodeProcess.Round(bStatus);
        var restarted = await StartAt("b again", "b", "--num-blocks", "2", "--initial-peers", a.SwarmAddress).ReadyAsync(Wait);
        var again = NodeProcess.Round(await a.StatusAsync());
        await InSyncAsync(a, restarted, again + 2);
        Assert.True(Directory.Exists(Path.Combine(_root, "b", "node", "checkpoint")));
        _ = bRound;

        // A leaves on SIGTERM: exit code 0, a checkpoint, and its announcement withdrawn (well within the 60 s TTL)
        var aPeer = (string)(await a.StatusAsync())["node"]!["peer_id"]!;
        var exit = await a.TerminateAsync(TimeSpan.FromSeconds(30));
        Assert.True(exit == 0, $"exit code {exit}\n{a.Output}");
        Assert.True(File.Exists(Path.Combine(_root, "a", "node", "checkpoint", "diloco_state.json")));
        await restarted.WaitForStatusAsync(s => s["peers"]!.AsArray().All(p => (string?)p!["peer_id"] != aPeer), TimeSpan.FromSeconds(25), "A's announcement to disappear");

        // pollen status sees the rest of the swarm
        var status = await PollenProcess.RunAsync(["status", "--initial-peers", restarted.SwarmAddress, "--json"], threads: false);
        Assert.True(status.ExitCode == 0, status.Stderr);
        var peers = status.Json["peers"]!.AsArray();
        Assert.DoesNotContain(peers, p => (string?)p!["peer_id"] == aPeer);
        Assert.True(peers.Count >= 1, status.Stdout);
        Assert.True((long)status.Json["run"]!["round"]! >= again + 2, status.Stdout);
        Assert.True((int)status.Json["run"]!["live_peers"]! == 1, status.Stdout); // A withdrew its progress: nobody waits for it
        Assert.Contains("coverage", status.Stdout, StringComparison.Ordinal);
        TestContext.Current.SendDiagnosticMessage($"node swarm test took {clock.Elapsed.TotalSeconds:F0} s");
    }

    [Fact]
    public async Task ANoTrainNodeServesTheRunsLatestRound()
    {
        var a = await Start("a").ReadyAsync(Wait);
        await a.WaitForStatusAsync(s => NodeProcess.Round(s) >= 3, Wait, "three rounds");
        var follower = await Start("f", "--no-train", "--initial-peers", a.SwarmAddress).ReadyAsync(Wait);
        Assert.Null((await follower.StatusAsync())["training"]);
        // whatever round A is at when the follower checks, the follower ends up serving it, with A's parameters
        var (servedRound, trainedRound, servedHash, trainedHash) = (-1, -1, (string?)null, (string?)null);
        await NodeProcess.WaitForAsync(async () =>
        {
            var served = await follower.StatusAsync();
            var trained = await a.StatusAsync();
            (servedRound, trainedRound) = ((int?)served["serving"]?["served_round"] ?? -1, NodeProcess.Round(trained));
            (servedHash, trainedHash) = ((string?)served["serving"]?["parameter_hash"], NodeProcess.Hash(trained));
            return servedRound >= 3 && servedRound == trainedRound;
        }, Wait, () => $"the follower to serve A's round: it serves {servedRound}, A is at {trainedRound}\n{follower.Output}");
        Assert.Equal(trainedHash, servedHash);
        Assert.Contains(await StreamChatAsync(follower.Url), new[] { "stop", "length" }); // its API answers (through whichever server holds the blocks)

        // without a terminal a node logs one JSON object per line on stderr: time, level, category, message, fields
        var lines = a.ErrorLines;
        Assert.NotEmpty(lines);
        var events = lines.Select(line => System.Text.Json.Nodes.JsonNode.Parse(line)!.AsObject()).ToList();
        Assert.All(events, e => Assert.True(e["Timestamp"] is not null && e["LogLevel"] is not null && e["Category"] is not null && e["Message"] is not null, e.ToJsonString()));
        var round = Assert.Single(events, e => (int?)e["EventId"] == 604 && (int?)e["State"]?["Round"] == 1);
        Assert.StartsWith("Round 1 done", (string)round["Message"]!, StringComparison.Ordinal);
        Assert.Contains(events, e => (string?)e["Message"] is { } m && m.StartsWith("Node options", StringComparison.Ordinal));
    }

    /// <summary>Waits until both report the same round (at least <paramref name="atLeast"/>) with the same parameter hash.</summary>
    private static async Task<(int Round, string Hash)> InSyncAsync(NodeProcess x, NodeProcess y, int atLeast)
    {
        var (rx, ry, hx, hy) = (-1, -1, (string?)null, (string?)null);
        await NodeProcess.WaitForAsync(async () =>
        {
            var sx = await x.StatusAsync();
            var sy = await y.StatusAsync();
            (rx, ry, hx, hy) = (NodeProcess.Round(sx), NodeProcess.Round(sy), NodeProcess.Hash(sx), NodeProcess.Hash(sy));
            return rx >= atLeast && rx == ry && hx is not null && hx == hy;
        }, Wait, () => $"{x.Name} and {y.Name} to hold equal parameters at round >= {atLeast}: {x.Name} round {rx} {hx?[..12]}, {y.Name} round {ry} {hy?[..12]}\n{x.Output}\n{y.Output}");
        return (rx, hx!);
    }

    /// <summary>
    /// POSTs a streamed chat completion; returns the finish reason of its last chunk after checking the
    /// stream is well formed (chunks of the model, ended by [DONE]). The text itself may be empty: a barely
    /// trained model can end its turn at once.
    /// </summary>
    private static async Task<string> StreamChatAsync(Uri url)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var body = new JsonObject
        {
            ["model"] = "pollen",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
            ["max_tokens"] = 8,
            ["stream"] = true,
            ["temperature"] = 0,
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(url, "v1/chat/completions")) { Content = JsonContent.Create(body) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        string? finish = null;
        var chunks = 0;
        var done = false;
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal))
            {
                continue;
            }
            var data = line["data: ".Length..].Trim();
            if (data == "[DONE]")
            {
                done = true;
                continue;
            }
            var chunk = JsonNode.Parse(data)!;
            Assert.Equal("chat.completion.chunk", (string?)chunk["object"]);
            finish ??= (string?)chunk["choices"]![0]!["finish_reason"];
            chunks++;
        }
        Assert.True(done, text);
        Assert.True(chunks >= 2, text);
        return finish ?? throw new InvalidOperationException($"no chunk carried a finish reason: {text}");
    }
}
