namespace Pollen.Cli;

/// <summary>
/// Lets idle thread-pool threads spin longer before they sleep when a command serves or decodes with its
/// tensor math on fewer threads than the machine has cores.
/// </summary>
/// <remarks>
/// Every message through a block server crosses several threads (the socket's event thread, Kestrel's
/// connection loop, the gRPC handler, the HTTP/2 writer of the push stream), and a pool thread that has gone
/// to sleep costs tens of microseconds to wake on a virtual machine, several times per message. Measured on
/// 2 cores, 4 servers and 1 tensor thread (<c>pollen bench inference --threads 1</c>): a message between
/// servers took 310–550 µs with a spin limit of 1000 against 520–690 µs with the default of 70, and
/// swarm / local rose in 6 of 6 alternated pairs (0.94–0.96 against 0.84–0.87 in the last three). With
/// the tensor math on every core the spinning threads take cycles from it instead (0.80 and 0.73 against
/// 0.83 and 0.87 with 2 threads), so the setting applies only when a core is left to the network. The
/// pool reads it when its first worker starts, so this runs first in <c>Main</c>; an explicit
/// <c>DOTNET_ThreadPool_UnfairSemaphoreSpinLimit</c> wins.
/// </remarks>
internal static class PoolSpin
{
    /// <summary>The runtime setting (an AppContext switch, read once).</summary>
    internal const string Setting = "System.Threading.ThreadPool.UnfairSemaphoreSpinLimit";

    /// <summary>The spin limit used (the runtime's default is 70).</summary>
    internal const int Limit = 1000;

    /// <summary>Sets the spin limit if <see cref="Applies"/>; returns whether it did.</summary>
    internal static bool Configure(string[] args)
    {
        if (!Applies(args, Environment.ProcessorCount)
            || Environment.GetEnvironmentVariable("DOTNET_ThreadPool_UnfairSemaphoreSpinLimit") is not null
            || AppContext.GetData(Setting) is not null)
        {
            return false;
        }
        AppContext.SetData(Setting, Limit);
        return true;
    }

    /// <summary>
    /// Whether the command in <paramref name="args"/> is one that serves or decodes (serve, generate, api,
    /// bench inference) and its <c>--threads</c> leave at least one of <paramref name="cores"/> free. A
    /// node is left out: its training takes the other cores.
    /// </summary>
    internal static bool Applies(string[] args, int cores)
    {
        var decodes = args is ["serve" or "generate" or "api", ..] or ["bench", "inference", ..];
        return decodes && (Threads(args) ?? cores) < cores;
    }

    /// <summary>The value of <c>--threads N</c> or <c>--threads=N</c>, if given and a number.</summary>
    private static int? Threads(string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            var value = args[i] == "--threads" && i + 1 < args.Length ? args[i + 1]
                : args[i].StartsWith("--threads=", StringComparison.Ordinal) ? args[i]["--threads=".Length..]
                : null;
            if (value is not null && int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var threads))
            {
                return threads;
            }
        }
        return null;
    }
}
