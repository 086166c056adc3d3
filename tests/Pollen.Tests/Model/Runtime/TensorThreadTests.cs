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

    [Fact]
    public async Task AsyncCallersDoNotHoldAThreadWhileTheirWorkWaitsItsTurn()
    {
        var onTensorThread = await TensorThread.InvokeAsync(() => TensorThread.IsCurrent);
        Assert.True(onTensorThread);
        var tensorThread = await TensorThread.InvokeAsync(() => Environment.CurrentManagedThreadId);

        // the tensor thread is held: 64 callers queue behind it, and none of them holds a thread meanwhile
        using var gate = new ManualResetEventSlim();
        var held = TensorThread.InvokeAsync(() => gate.Wait(TimeSpan.FromSeconds(30)));
        var waiting = Enumerable.Range(0, 64).Select(i => TensorThread.InvokeAsync(() => (Thread: Environment.CurrentManagedThreadId, Value: i))).ToArray();
        Assert.All(waiting, t => Assert.False(t.IsCompleted)); // handed over and returned: no caller waits in a thread
        gate.Set();
        Assert.True(await held);
        var results = await Task.WhenAll(waiting);
        Assert.All(results, r => Assert.Equal(tensorThread, r.Thread));
        Assert.Equal(Enumerable.Range(0, 64), results.Select(r => r.Value)); // in order of arrival

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => TensorThread.InvokeAsync<int>(() => throw new InvalidDataException("bad weights")));
        Assert.Equal("bad weights", error.Message);
        Assert.Equal(7, await TensorThread.InvokeAsync(() => 7));
    }
}
