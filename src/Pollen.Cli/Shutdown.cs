using System.Runtime.InteropServices;

namespace Pollen.Cli;

/// <summary>
/// Turns the first SIGINT/SIGTERM into a cancellation that long jobs honour (training stops after the
/// current step and saves a checkpoint); a second signal ends the process at once.
/// </summary>
internal static class Shutdown
{
    private static readonly CancellationTokenSource Source = new();
    private static readonly List<PosixSignalRegistration> Registrations = [];

    /// <summary>Cancelled on the first termination signal.</summary>
    public static CancellationToken Token => Source.Token;

    /// <summary>
    /// Set while something else owns the terminal (the node's live dashboard): the first signal is then not
    /// announced on stderr, which would tear the drawn frame; the command logs its own stop instead.
    /// </summary>
    public static bool Quiet { get; set; }

    public static void Install()
    {
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
        {
            Registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                if (Source.IsCancellationRequested)
                {
                    return; // second signal: let the process end
                }
                context.Cancel = true;
                if (!Quiet)
                {
                    Console.Error.WriteLine($"{context.Signal}: finishing the current step and saving; send it again to quit at once");
                }
                Source.Cancel();
            }));
        }
    }
}
