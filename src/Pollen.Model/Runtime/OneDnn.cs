using System.Runtime.InteropServices;

namespace Pollen.Model.Runtime;

/// <summary>
/// Switches libtorch's oneDNN (mkldnn) backend off around single-token steps with bf16/f16 weights:
/// oneDNN adds ~20 µs of set-up to every one-row low-precision matmul, which dominates decoding, while
/// it is what makes multi-token (prefill, training) matmuls fast. The switch is libtorch's global
/// <c>at::Context::setUserEnabledMkldnn</c> (PyTorch's <c>torch.backends.mkldnn.enabled</c>); it only
/// selects kernels, so results stay correct whichever thread flips it. Suspensions nest and are counted,
/// so concurrent decoders keep it off until the last one is done.
/// </summary>
public static unsafe class OneDnn
{
    private static readonly Lock Gate = new();
    private static readonly delegate* unmanaged<nint> GlobalContext;
    private static readonly delegate* unmanaged<nint, byte, void> SetEnabled;
    private static int _suspensions;

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1810", Justification = "resolving native exports needs statements")]
    static OneDnn()
    {
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", out var library) && !NativeLibrary.TryLoad("libtorch_cpu.dylib", out library))
        {
            return;
        }
        if (NativeLibrary.TryGetExport(library, "_ZN2at13globalContextEv", out var context)
            && NativeLibrary.TryGetExport(library, "_ZN2at7Context20setUserEnabledMkldnnEb", out var set))
        {
            GlobalContext = (delegate* unmanaged<nint>)context;
            SetEnabled = (delegate* unmanaged<nint, byte, void>)set;
        }
    }

    /// <summary>Whether the switch was found in the loaded libtorch.</summary>
    public static bool Available => SetEnabled != null;

    /// <summary>Turns oneDNN off until the returned handle is disposed (no-op when unavailable).</summary>
    public static Suspension Suspend()
    {
        if (!Available)
        {
            return default;
        }
        lock (Gate)
        {
            if (_suspensions++ == 0)
            {
                SetEnabled(GlobalContext(), 0);
            }
        }
        return new Suspension(true);
    }

    private static void Resume()
    {
        lock (Gate)
        {
            if (--_suspensions == 0)
            {
                SetEnabled(GlobalContext(), 1);
            }
        }
    }

    /// <summary>Ends a <see cref="Suspend"/>.</summary>
    public readonly struct Suspension(bool active) : IDisposable
    {
        /// <inheritdoc/>
        public void Dispose()
        {
            if (active)
            {
                Resume();
            }
        }
    }
}
