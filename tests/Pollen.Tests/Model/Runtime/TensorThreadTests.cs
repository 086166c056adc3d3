using System.Net;
using System.Net.Sockets;
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

    [Fact]
    public async Task AWatchedSocketIsReadOnTheTensorThreadWhileWorkStillRuns()
    {
        var (sender, receiver) = await ConnectedPairAsync();
        using var _ = sender;
        var received = new List<byte>();
        var reads = new List<bool>(); // whether each handler call ran on the tensor thread
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gotThree = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var buffer = new byte[16];
        TensorThread.Watch(receiver, () =>
        {
            reads.Add(TensorThread.IsCurrent);
            while (true)
            {
                var got = receiver.Receive(buffer, SocketFlags.None, out var error);
                if (error == SocketError.WouldBlock)
                {
                    return;
                }
                if (got == 0)
                {
                    TensorThread.Unwatch(receiver);
                    receiver.Dispose();
                    ended.TrySetResult();
                    return;
                }
                received.AddRange(buffer.Take(got));
                if (received.Count >= 3)
                {
                    gotThree.TrySetResult();
                }
            }
        });

        // nothing to read: the thread waits on the socket, and work handed to it meanwhile still runs at once
        Assert.Equal(5, await TensorThread.InvokeAsync(() => 5).WaitAsync(TimeSpan.FromSeconds(30), Ct));
        sender.Send([1, 2, 3]);
        await gotThree.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.Equal(6, await TensorThread.InvokeAsync(() => 6).WaitAsync(TimeSpan.FromSeconds(30), Ct));
        sender.Shutdown(SocketShutdown.Send); // the end of the stream is readable too
        await ended.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        var (bytes, calls) = await TensorThread.InvokeAsync(() => (received.ToArray(), reads.ToArray()));
        Assert.Equal([1, 2, 3], bytes);
        Assert.All(calls, Assert.True);
    }

    [Fact]
    public async Task AnUnwatchedSocketIsNoLongerReadAndAThrowingHandlerLosesOnlyItsSocket()
    {
        var (sender, receiver) = await ConnectedPairAsync();
        using var _ = sender;
        using var __ = receiver;
        var calls = 0;
        var called = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        TensorThread.Watch(receiver, () =>
        {
            calls++;
            called.TrySetResult();
            throw new InvalidOperationException("a broken handler");
        });
        sender.Send([1]);
        await called.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        // the byte is still unread, so the socket stays readable: a handler still watched would run again
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(i, await TensorThread.InvokeAsync(() => i).WaitAsync(TimeSpan.FromSeconds(30), Ct));
        }
        Assert.Equal(1, await TensorThread.InvokeAsync(() => calls));

        var (sender2, receiver2) = await ConnectedPairAsync();
        using var ___ = sender2;
        using var ____ = receiver2;
        var second = 0;
        TensorThread.Watch(receiver2, () => second++); // never reads: readable for as long as it is watched
        // unwatched on the tensor thread, and only then sent to (from another thread, Unwatch takes effect when
        // the thread gets to it, and a byte sent before that may still be read)
        await TensorThread.InvokeAsync(() =>
        {
            TensorThread.Unwatch(receiver2);
            return true;
        });
        sender2.Send([1]);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(i, await TensorThread.InvokeAsync(() => i).WaitAsync(TimeSpan.FromSeconds(30), Ct));
        }
        Assert.Equal(0, await TensorThread.InvokeAsync(() => second));
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(Socket Sender, Socket Receiver)> ConnectedPairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await sender.ConnectAsync(listener.LocalEndPoint!, Ct);
        return (sender, await listener.AcceptAsync(Ct));
    }
}
