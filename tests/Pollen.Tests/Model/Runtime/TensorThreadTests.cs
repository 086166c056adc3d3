using Pollen.Model.Runtime;
using static TorchSharp.torch;

namespace Pollen.Tests.Model.Runtime;

public class TensorThreadTests
{
    [Fact]
    public async Task WorkFromManyThreadsRunsOnOneThreadAndReturnsItsResult()
    {
        var callers = Enumerable.Range(0, 8).Select(i => Task.Run(() => TensorThread.Invoke(() =>
        {
            using var scope = NewDisposeScope();
            var sum = arange(i + 1).sum().item<long>(); // 0 + 1 + … + i
            return (Thread: Environment.CurrentManagedThreadId, Sum: sum, OnTensorThread: TensorThread.IsCurrent);
        })));
        var results = await Task.WhenAll(callers);
        Assert.Single(results.Select(r => r.Thread).Distinct());
        Assert.NotEqual(Environment.CurrentManagedThreadId, results[0].Thread);
        Assert.All(results, r => Assert.True(r.OnTensorThread));
        Assert.Equal(Enumerable.Range(0, 8).Select(i => (long)i * (i + 1) / 2), results.Select(r => r.Sum));
        Assert.False(TensorThread.IsCurrent);
    }

    [Fact]
    public void AnExceptionReachesTheCallerWithItsTypeAndTheThreadGoesOn()
    {
        var error = Assert.Throws<InvalidDataException>(() => TensorThread.Invoke<int>(() => throw new InvalidDataException("bad weights")));
        Assert.Equal("bad weights", error.Message);
        Assert.Equal(42, TensorThread.Invoke(() => 42));
    }

    [Fact]
    public void ACallFromTheTensorThreadRunsInPlaceInsteadOfWaitingForItself()
    {
        var (outer, inner) = TensorThread.Invoke(() => (Environment.CurrentManagedThreadId, TensorThread.Invoke(() => Environment.CurrentManagedThreadId)));
        Assert.Equal(outer, inner);
    }
}
