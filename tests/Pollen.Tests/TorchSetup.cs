using System.Runtime.CompilerServices;
using Pollen.Model.Runtime;

namespace Pollen.Tests;

/// <summary>Every test runs TorchSharp on one thread: deterministic and fair to the other tests.</summary>
internal static class TorchSetup
{
    [ModuleInitializer]
    internal static void Initialize() => TorchRuntime.Initialize(1);
}
