using System.Runtime.InteropServices;
using TorchSharp;

namespace Pollen.Model.Runtime;

/// <summary>
/// Process-wide TorchSharp set-up, done once before the first tensor. libtorch's OpenMP threads spin
/// while waiting by default; on a machine that also runs other work (a volunteer's desktop, a node that
/// trains and serves at once) spinning teams starve each other and a training step was measured 10×
/// slower. Pollen asks OpenMP to sleep instead (<c>OMP_WAIT_POLICY=PASSIVE</c>) unless the user chose a
/// policy. The variable must reach the native environment before libgomp loads, hence <c>setenv</c>.
/// </summary>
public static partial class TorchRuntime
{
    private static readonly Lock Gate = new();
    private static bool _initialized;

    /// <summary>What was done about MKL's CPU-vendor dispatch (see <see cref="MklCpuDispatch"/>).</summary>
    public static string MklDispatchStatus => MklCpuDispatch.Status;

    /// <summary>
    /// Sets the wait policy and MKL's CPU dispatch (first call only, before any tensor exists) and the
    /// number of threads for tensor math.
    /// </summary>
    public static void Initialize(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        lock (Gate)
        {
            if (!_initialized)
            {
                if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is null && !OperatingSystem.IsWindows())
                {
                    _ = SetEnv("OMP_WAIT_POLICY", "PASSIVE", 0);
                    Environment.SetEnvironmentVariable("OMP_WAIT_POLICY", "PASSIVE");
                }
                torch.set_num_threads(threads); // loads libtorch
                MklCpuDispatch.Apply();
                _initialized = true;
            }
            torch.set_num_threads(threads);
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
