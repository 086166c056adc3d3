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

    public static async Task<Result> RunAsync(params string[] args)
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
        start.ArgumentList.Add("--threads");
        start.ArgumentList.Add("1");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return new Result(process.ExitCode, await stdout, await stderr);
    }
}
