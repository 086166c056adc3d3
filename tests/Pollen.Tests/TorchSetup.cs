using System.Runtime.CompilerServices;
using TorchSharp;

namespace Pollen.Tests;

/// <summary>Every test runs TorchSharp on one thread: deterministic and fair to the other tests.</summary>
internal static class TorchSetup
{
    [ModuleInitializer]
    internal static void Initialize() => torch.set_num_threads(1);
}
