using System.CommandLine;
using System.Text.Json.Nodes;

namespace Pollen.Cli.Commands;

/// <summary>Options shared by several commands, and small helpers for their output.</summary>
internal static class CommonOptions
{
    public static Option<int> Threads() => new("--threads")
    {
        Description = "CPU threads for tensor math (default: all cores). Results are reproducible for a fixed thread count.",
        DefaultValueFactory = _ => Environment.ProcessorCount,
    };

    public static Option<bool> Json() => new("--json")
    {
        Description = "Print one JSON object with the results as the last line of output.",
    };

    public static Option<int> Seed(string what) => new("--seed")
    {
        Description = $"Seed for {what} (default 0).",
        DefaultValueFactory = _ => 0,
    };

    /// <summary>Sets TorchSharp's thread count, refusing nonsense.</summary>
    public static void ApplyThreads(int threads)
    {
        if (threads <= 0)
        {
            throw new UsageException($"--threads must be positive (got {threads})");
        }
        Model.Runtime.TorchRuntime.Initialize(threads);
    }

    /// <summary>Keeps a long-running command (a node, a server) alive until Ctrl-C/SIGTERM; returns 0.</summary>
    public static async Task<int> RunUntilStoppedAsync(CancellationToken cancellationToken)
    {
        Console.Out.Flush();
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("stopping").ConfigureAwait(false);
        }
        return 0;
    }

    /// <summary>Writes the final JSON object on one line.</summary>
    public static void PrintJson(JsonObject result) => Console.Out.WriteLine(result.ToJsonString());

    /// <summary>Runs a command body, turning expected failures into a one-line message and exit code 1 (2 for usage errors).</summary>
    public static async Task<int> RunAsync(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (UsageException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
            return 2;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("cancelled").ConfigureAwait(false);
            return 130;
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or InvalidOperationException
            or UnauthorizedAccessException or Model.Config.ModelConfigException or Model.Checkpoints.CheckpointException
            or Model.Tokenizers.TokenizerException or Training.Data.DataException
            or Swarm.SwarmUnavailableException or Swarm.Records.RecordValidationException)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }
}

/// <summary>A command-line value the user must change; printed without a stack trace.</summary>
internal sealed class UsageException(string message) : Exception(message);
