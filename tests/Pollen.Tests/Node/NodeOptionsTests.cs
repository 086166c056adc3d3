using System.CommandLine;
using Pollen.Cli.Commands;
using Pollen.Node.Hosting;

namespace Pollen.Tests.Node;

/// <summary><c>pollen node</c>'s options: flags, the JSON config file under them, validation naming the option, the span policy, <c>--reset</c>.</summary>
public sealed class NodeOptionsTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "pollen-node-options-" + Guid.NewGuid().ToString("N"));

    public NodeOptionsTests() => Directory.CreateDirectory(_root);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static NodeOptions Parse(params string[] args)
    {
        var binding = new NodeOptionsBinding();
        var command = new Command("node");
        foreach (var option in binding.All)
        {
            command.Options.Add(option);
        }
        var result = command.Parse(args);
        Assert.Empty(result.Errors);
        return binding.Bind(result);
    }

    private string WriteConfig(string json)
    {
        var path = Path.Combine(_root, Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void DefaultsAreTheDocumentedOnes()
    {
        var o = Parse();
        Assert.Equal(5000, o.HttpPort);
        Assert.Equal(0, o.Port);
        Assert.Equal(0, o.PushPort); // a lane on any free port
        Assert.Equal("dev", o.Preset);
        Assert.Equal("pollen", o.EffectiveModelId);
        Assert.Empty(o.InitialPeers);
        Assert.True(o.Trains);
        Assert.Equal(50, o.EffectiveInnerSteps);
        Assert.Equal(TimeSpan.FromSeconds(30), o.MatchmakingWindow);
        Assert.Equal(Path.Combine(o.Home, "node"), o.StateDirectory);
    }

    [Fact]
    public void DevShortensTheBootstrapButExplicitValuesWin()
    {
        var o = Parse("--dev", "--inner-steps", "7");
        Assert.Equal(7, o.EffectiveInnerSteps);
        Assert.Equal(TimeSpan.FromSeconds(2), o.MatchmakingWindow);
        Assert.Equal(4, o.EffectiveBatchSize);
        Assert.Equal(1, o.EffectiveCorpusMb);
    }

    [Fact]
    public void FlagsOverrideTheConfigFileWhichOverridesDefaults()
    {
        var config = WriteConfig("""
            {
              // comments are allowed
              "http-port": 6000,
              "preset": "small",
              "no-train": true,
              "initial-peers": ["127.0.0.1:4000"],
              "num-blocks": 2,
            }
            """);
        var o = Parse("--config", config, "--http-port", "7000", "--home", _root);
        Assert.Equal(7000, o.HttpPort);
        Assert.Equal("small", o.Preset);
        Assert.True(o.NoTrain);
        Assert.False(o.Trains);
        Assert.Equal(["127.0.0.1:4000"], o.InitialPeers);
        Assert.Equal(2, o.NumBlocks);
        Assert.Equal(_root, o.Home);
        var peers = Parse("--config", config, "--initial-peers", "10.0.0.1:1", "10.0.0.2:2");
        Assert.Equal(["10.0.0.1:1", "10.0.0.2:2"], peers.InitialPeers);
    }

    [Fact]
    public void AnUnknownConfigKeyIsRefusedByName()
    {
        var config = WriteConfig("""{ "http-prot": 6000 }""");
        var e = Assert.Throws<UsageException>(() => Parse("--config", config));
        Assert.Contains("http-prot", e.Message, StringComparison.Ordinal);
        var missing = Assert.Throws<UsageException>(() => Parse("--config", Path.Combine(_root, "nope.json")));
        Assert.Contains("--config", missing.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--http-port", "70000", "--http-port")]
    [InlineData("--port", "-1", "--port")]
    [InlineData("--push-port", "-2", "--push-port")]
    [InlineData("--push-port", "65536", "--push-port")]
    [InlineData("--num-blocks", "0", "--num-blocks")]
    [InlineData("--blocks", "3:1", "--blocks")]
    [InlineData("--initial-peers", "nonsense", "--initial-peers")]
    [InlineData("--announce-address", "no-port", "--announce-address")]
    [InlineData("--preset", "huge", "--preset")]
    [InlineData("--model-id", "bad/id", "--model-id")]
    [InlineData("--threads", "0", "--threads")]
    [InlineData("--batch-size", "0", "--batch-size")]
    [InlineData("--matchmaking-seconds", "0", "--matchmaking-seconds")]
    [InlineData("--data", "/no/such/file.txt", "--data")]
    [InlineData("--model", "/no/such/dir", "--model")]
    public void AnInvalidOptionIsRefusedByName(string flag, string value, string named)
    {
        var e = Assert.Throws<UsageException>(() => Parse(flag, value));
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ContradictoryOptionsAreRefused()
    {
        Assert.Contains("not both", Assert.Throws<UsageException>(() => Parse("--blocks", "0:2", "--num-blocks", "2")).Message, StringComparison.Ordinal);
        Assert.Contains("nothing to do", Assert.Throws<UsageException>(() => Parse("--no-train", "--no-serve")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ModelImpliesNoTrainingAndItsDirectoryNameAsId()
    {
        var model = Directory.CreateDirectory(Path.Combine(_root, "my-model")).FullName;
        var o = Parse("--model", model);
        Assert.False(o.Trains);
        Assert.Equal("my-model", o.EffectiveModelId);
    }

    [Fact]
    public void TheSpanPolicyTakesTheBlocksTheFewestPeersServe()
    {
        var half = new NodeOptions { NumBlocks = 2 };
        Assert.Equal((0, 2), NodeHost.ChooseSpan(half, 4, []));
        Assert.Equal((2, 4), NodeHost.ChooseSpan(half, 4, [(0, 2)]));
        Assert.Equal((2, 4), NodeHost.ChooseSpan(half, 4, [(0, 2), (0, 4), (2, 4), (0, 2)]));
        Assert.Equal((0, 2), NodeHost.ChooseSpan(half, 4, [(0, 2), (2, 4), (2, 4)]));
        Assert.Equal((1, 3), NodeHost.ChooseSpan(new NodeOptions { NumBlocks = 2 }, 4, [(0, 1), (3, 4)]));
        Assert.Equal((0, 4), NodeHost.ChooseSpan(new NodeOptions(), 4, [(0, 2)]));
        Assert.Equal((1, 3), NodeHost.ChooseSpan(new NodeOptions { Blocks = "1:3" }, 4, [(1, 3)]));
        Assert.Contains("--blocks", Assert.Throws<ArgumentException>(() => NodeHost.ChooseSpan(new NodeOptions { Blocks = "1:9" }, 4, [])).Message, StringComparison.Ordinal);
        Assert.Contains("--num-blocks", Assert.Throws<ArgumentException>(() => NodeHost.ChooseSpan(new NodeOptions { NumBlocks = 5 }, 4, [])).Message, StringComparison.Ordinal);
    }

    /// <summary>A home with this node's state next to things --reset must leave alone.</summary>
    private (NodeOptions Options, string[] Keep) HomeWithState()
    {
        var home = Path.Combine(_root, "home");
        var options = new NodeOptions { Home = home };
        Directory.CreateDirectory(Path.Combine(options.StateDirectory, "checkpoint"));
        File.WriteAllText(Path.Combine(options.StateDirectory, "checkpoint", "model.safetensors"), "weights");
        File.WriteAllText(Path.Combine(options.StateDirectory, "checkpoint", "diloco_state.json"), "{}");
        var keep = new[]
        {
            Path.Combine(home, "identity.key"),
            Path.Combine(home, "notes.txt"),
            Path.Combine(home, "nodes", "other", "node", "checkpoint", "model.safetensors"), // another node's state under this home
            Path.Combine(_root, "node", "checkpoint", "model.safetensors"), // a sibling named like the state directory
        };
        foreach (var file in keep)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, "keep");
        }
        return (options, keep);
    }

    [Fact]
    public void ResetWithYesDeletesOnlyThisNodesState()
    {
        var (options, keep) = HomeWithState();
        options.Yes = true;
        var output = new StringWriter();
        Assert.True(NodeReset.Run(options, new StringReader(""), interactive: false, output));
        Assert.False(Directory.Exists(options.StateDirectory));
        Assert.All(keep, f => Assert.True(File.Exists(f), f));
        Assert.Contains("deleted", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ResetRefusesWithoutYesOnANonInteractiveStdin()
    {
        var (options, keep) = HomeWithState();
        var output = new StringWriter();
        Assert.False(NodeReset.Run(options, new StringReader("yes\n"), interactive: false, output));
        Assert.True(File.Exists(Path.Combine(options.StateDirectory, "checkpoint", "model.safetensors")));
        Assert.All(keep, f => Assert.True(File.Exists(f), f));
        Assert.Contains("--yes", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ResetOnATerminalDeletesOnlyWhenTheAnswerIsYes()
    {
        var (options, keep) = HomeWithState();
        Assert.False(NodeReset.Run(options, new StringReader("no\n"), interactive: true, new StringWriter()));
        Assert.True(Directory.Exists(options.StateDirectory));
        Assert.True(NodeReset.Run(options, new StringReader("yes\n"), interactive: true, new StringWriter()));
        Assert.False(Directory.Exists(options.StateDirectory));
        Assert.All(keep, f => Assert.True(File.Exists(f), f));
    }
}
