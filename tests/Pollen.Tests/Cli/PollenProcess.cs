using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Pollen.Tests.Cli;

/// <summary>Runs the real <c>pollen</c> command in a separate OS process.</summary>
internal static class PollenProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        /// <summary>The JSON object on the last line of stdout.</summary>
        public JsonObject Json => JsonNode.Parse(Stdout.TrimEnd().Split('\n')[^1])!.AsObject();
    }

    private static string CliPath => Path.Combine(AppContext.BaseDirectory, "pollen.dll");

    public static Task<Result> RunAsync(params string[] args) => RunAsync(args, threads: true);

    /// <summary>Runs <c>pollen</c> to completion; <paramref name="threads"/> false for commands without <c>--threads</c>.</summary>
    public static async Task<Result> RunAsync(string[] args, bool threads)
    {
        using var process = Start(args, threads);
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await WaitAsync(process, TimeSpan.FromMinutes(3));
        return new Result(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Waits for exit; kills the process tree and fails the test after <paramref name="timeout"/>.</summary>
    public static async Task WaitAsync(Process process, TimeSpan timeout)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cancel.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
    }

    /// <summary>Starts <c>pollen</c> with redirected output (one thread for tensor math).</summary>
    public static Process Start(params string[] args) => Start(args, threads: true);

    /// <summary>Starts <c>pollen</c> with redirected output, with <c>--threads 1</c> appended when <paramref name="threads"/>.</summary>
    public static Process Start(string[] args, bool threads)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(CliPath);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }
        if (threads)
        {
            start.ArgumentList.Add("--threads");
            start.ArgumentList.Add("1");
        }
        return Process.Start(start)!;
    }
}
