using System.CommandLine;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen bench …</c>: benchmark scenarios that print one JSON object per scenario.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Benchmarks; each scenario prints one JSON object with ratios against a baseline from the same run.");
        return command;
    }
}
