using Pollen.Model.Runtime;
using static TorchSharp.torch;

namespace Pollen.Tests.Model.Runtime;

public class TorchRuntimeTests
{
    [Fact]
    public void MklVendorDispatchIsAppliedOrDeliberatelySkipped()
    {
        TorchRuntime.Initialize(1);
        var status = TorchRuntime.MklDispatchStatus;
        // it never ends half-done or untried on a machine where it is wanted
        Assert.DoesNotContain("partial", status);
        Assert.DoesNotContain("not applied", status);
        var amdLinux = OperatingSystem.IsLinux() && File.ReadLines("/proc/cpuinfo").Any(l => l.StartsWith("vendor_id", StringComparison.Ordinal) && l.Contains("AuthenticAMD", StringComparison.Ordinal));
        if (amdLinux && Environment.GetEnvironmentVariable("POLLEN_MKL_VENDOR_FIX") != "0")
        {
            Assert.StartsWith("applied", status);
        }

        // matrix products stay correct: compare a float32 matmul with a float64 one
        using var scope = NewDisposeScope();
        manual_seed(0);
        var a = randn(64, 256);
        var b = randn(256, 96);
        var error = (a.matmul(b).to(float64) - a.to(float64).matmul(b.to(float64))).abs().max().item<double>();
        Assert.True(error < 1e-3, $"max error {error}");
    }
}
