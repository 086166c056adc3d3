using System.IO.Compression;
using System.Text;

namespace Pollen.Tests.Build;

/// <summary>
/// The build marks libLibTorchSharp.so's GLIBCXX_3.4.32 requirement weak in output folders where the
/// system libstdc++ lacks it — and must never touch the copy in the NuGet cache, which every other
/// project on the machine shares.
/// </summary>
public class NativeFixTests
{
    private const string Library = "libLibTorchSharp.so";

    [Fact]
    public void NuGetCacheCopyIsPristineAndOutputCopyIsPatchedOnlyWhereNeeded()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && Environment.Is64BitProcess, "the native fix applies to Linux x64 only");
        var output = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", Library);
        Assert.True(File.Exists(output), $"{output} is missing");

        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var packageDir = Directory.GetDirectories(Path.Combine(packages, "torchsharp")).Single(d => Path.GetFileName(d) == "0.107.0");
        var cached = File.ReadAllBytes(Path.Combine(packageDir, "runtimes", "linux-x64", "native", Library));
        using var nupkg = ZipFile.OpenRead(Path.Combine(packageDir, "torchsharp.0.107.0.nupkg"));
        using var entry = nupkg.GetEntry($"runtimes/linux-x64/native/{Library}")!.Open();
        using var original = new MemoryStream();
        entry.CopyTo(original);
        Assert.True(original.ToArray().AsSpan().SequenceEqual(cached), "the NuGet cache copy of libLibTorchSharp.so was modified");

        var patched = File.ReadAllBytes(output);
        Assert.Equal(cached.Length, patched.Length);
        var differing = Enumerable.Range(0, cached.Length).Count(i => cached[i] != patched[i]);
        if (SystemLibstdcxxHas("GLIBCXX_3.4.32"))
        {
            Assert.Equal(0, differing);
        }
        else
        {
            Assert.Equal(1, differing); // one vna_flags byte gains VER_FLG_WEAK
            var at = Enumerable.Range(0, cached.Length).Single(i => cached[i] != patched[i]);
            Assert.Equal(cached[at] | 0x2, patched[at]);
        }
    }

    private static bool SystemLibstdcxxHas(string version)
    {
        foreach (var path in new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" })
        {
            if (File.Exists(path))
            {
                return Encoding.ASCII.GetString(File.ReadAllBytes(path)).Contains(version + "\0", StringComparison.Ordinal);
            }
        }
        return false;
    }
}
