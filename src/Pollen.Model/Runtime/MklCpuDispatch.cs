using System.Runtime.InteropServices;

namespace Pollen.Model.Runtime;

/// <summary>
/// libtorch's bundled oneMKL picks its fast kernels only after asking two exported vendor checks
/// (<c>mkl_serv_intel_cpu</c>, <c>mkl_serv_intel_cpu_true</c>) whether the CPU is an Intel one; on AMD
/// it falls back to a generic path that decodes about half as fast (measured: f32 single-token steps).
/// On x86-64 Linux with a non-Intel CPU this rewrites both functions in the loaded library to return
/// 1, before the first matrix product makes MKL cache its answer. The kernels then chosen are the
/// ones the CPU's feature flags allow, so results stay correct; only the vendor gate is removed.
/// Set <c>POLLEN_MKL_VENDOR_FIX=0</c> to leave MKL as it is. Failures (a hardened kernel refusing
/// writable code pages, a libtorch without these exports) leave the library untouched.
/// </summary>
internal static partial class MklCpuDispatch
{
    private const int RtldNow = 2;
    private const int RtldNoLoad = 4;
    private const int ProtRead = 1;
    private const int ProtWrite = 2;
    private const int ProtExec = 4;

    // mov eax, 1 ; ret
    private static ReadOnlySpan<byte> ReturnOne => [0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3];

    /// <summary>What <see cref="Apply"/> did, for logs and benchmarks.</summary>
    public static string Status { get; private set; } = "not applied";

    /// <summary>Applies the fix if it is wanted and possible; call after libtorch is loaded and before any matmul.</summary>
    public static unsafe void Apply()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            Status = "not needed (not x86-64 Linux)";
            return;
        }
        if (Environment.GetEnvironmentVariable("POLLEN_MKL_VENDOR_FIX") == "0")
        {
            Status = "disabled by POLLEN_MKL_VENDOR_FIX=0";
            return;
        }
        if (CpuVendor() is not string vendor || vendor == "GenuineIntel")
        {
            Status = "not needed (Intel CPU or unknown vendor)";
            return;
        }
        var library = DlOpen("libtorch_cpu.so", RtldNow | RtldNoLoad);
        if (library == 0)
        {
            Status = "skipped (libtorch_cpu.so not loaded)";
            return;
        }
        var pageSize = Environment.SystemPageSize;
        var patched = 0;
        foreach (var name in new[] { "mkl_serv_intel_cpu", "mkl_serv_intel_cpu_true" })
        {
            var address = DlSym(library, name);
            if (address == 0)
            {
                continue;
            }
            var page = address & ~(nint)(pageSize - 1);
            var length = (nuint)(address + ReturnOne.Length - page);
            if (MProtect(page, length, ProtRead | ProtWrite | ProtExec) != 0)
            {
                Status = $"skipped (the kernel refused to make {name} writable)";
                return;
            }
            ReturnOne.CopyTo(new Span<byte>((void*)address, ReturnOne.Length));
            _ = MProtect(page, length, ProtRead | ProtExec);
            patched++;
        }
        Status = patched == 2 ? $"applied ({vendor})" : $"partial ({patched} of 2 vendor checks found)";
    }

    private static string? CpuVendor()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("vendor_id", StringComparison.Ordinal))
                {
                    return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
                }
            }
        }
        catch (IOException)
        {
        }
        return null;
    }

    [LibraryImport("libc", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint DlOpen(string file, int mode);

    [LibraryImport("libc", EntryPoint = "dlsym", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint DlSym(nint handle, string name);

    [LibraryImport("libc", EntryPoint = "mprotect")]
    private static partial int MProtect(nint address, nuint length, int protection);
}
