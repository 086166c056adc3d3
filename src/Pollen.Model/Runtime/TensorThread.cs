using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Pollen.Model.Runtime;

/// <summary>
/// One thread per process on which the serving path runs its tensor math: every block server hosted by
/// the process hands its forwards here, and the caller waits for the result.
/// </summary>
/// <remarks>
/// <para>
/// libtorch keeps state per calling thread (an OpenMP team of intra-op workers for each thread that
/// starts parallel work, allocator and MKL buffers), and that state goes cold when its thread sleeps.
/// Running a forward on whichever thread a request arrived on, or on one thread per server, therefore
/// made the same blocks slower than in a local loop. Measured on 2 cores, 52M-parameter model, 8 blocks
/// in 4 parts of 2, one token at a time, no network: the parts on 4 threads of their own took 10.5–11.1
/// ms a token (2 intra-op threads; 9.7–9.9 ms with 1) against 7.5–7.7 ms (8.3–8.9 ms) for all of them on
/// one thread, and handing each part to one shared thread cost nothing measurable (7.5 ms, 8.7 ms).
/// </para>
/// <para>
/// Serving on one machine never gains from two forwards at once (each already spreads over the cores),
/// so one thread loses no throughput. Training is not routed here: it runs on its own thread, next to
/// serving, as before.
/// </para>
/// <para>
/// The thread also reads sockets that are <see cref="Watch">watched</see>: when it has no work, it waits for
/// work or for one of them to become readable, whichever comes first, and runs the socket's handler itself.
/// A step that arrives on such a socket then wakes one thread, the one that computes it, instead of a
/// reading thread that wakes this one; and a step passed between two servers of this process wakes none.
/// </para>
/// </remarks>
public static class TensorThread
{
    private static readonly Lazy<BlockingCollection<Action>> Queue = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    [ThreadStatic]
    private static bool _onTensorThread;

    /// <summary>True on the tensor thread.</summary>
    public static bool IsCurrent => _onTensorThread;

    /// <summary>
    /// Runs <paramref name="work"/> on the tensor thread and returns its result (or rethrows its
    /// exception); runs it directly when called from the tensor thread.
    /// </summary>
    public static T Invoke<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (_onTensorThread)
        {
            return work();
        }
        return InvokeAsync(work).GetAwaiter().GetResult(); // a blocked waiter is released on the tensor thread itself
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the tensor thread; the task completes with its result (or its
    /// exception), and the caller's continuation runs on the thread pool, not on the tensor thread. For async
    /// callers: a pool thread blocked in <see cref="Invoke{T}(Func{T})"/> behind other work is a thread the
    /// pool does not have, and many sessions blocked at once starve the network handling they wait for.
    /// </summary>
    public static Task<T> InvokeAsync<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (_onTensorThread)
        {
            try
            {
                return Task.FromResult(work());
            }
            catch (Exception e)
            {
                return Task.FromException<T>(e);
            }
        }
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Enqueue(() =>
        {
            try
            {
                completion.SetResult(work());
            }
            catch (Exception e)
            {
                completion.SetException(e);
            }
        });
        return completion.Task;
    }

    /// <summary>Runs <paramref name="work"/> on the tensor thread and waits for it.</summary>
    public static void Invoke(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        Invoke(() =>
        {
            work();
            return true;
        });
    }

    /// <summary>
    /// Has the tensor thread run <paramref name="onReadable"/> whenever <paramref name="socket"/> has data, has
    /// ended or failed, between pieces of work, until <see cref="Unwatch"/>. The handler runs on the tensor
    /// thread and must not block: it reads what is there (the socket is made non-blocking) and returns. The
    /// socket must not be disposed while watched: unwatch it first (on the tensor thread, e.g. from its
    /// handler or through <see cref="InvokeAsync{T}(Func{T})"/>). Takes effect at once on the tensor
    /// thread, else when the thread next gets to it.
    /// </summary>
    public static void Watch(Socket socket, Action onReadable)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(onReadable);
        socket.Blocking = false;
        OnThread(() => Watched[socket] = onReadable);
    }

    /// <summary>Stops watching <paramref name="socket"/>; at once on the tensor thread, else when the thread next gets to it.</summary>
    public static void Unwatch(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        OnThread(() => Watched.Remove(socket));
    }

    /// <summary>Sockets watched, with their handlers; touched on the tensor thread only.</summary>
    private static readonly Dictionary<Socket, Action> Watched = [];

    /// <summary>1 while the tensor thread waits in a select (a new item must then wake it through <see cref="WakeSocket"/>).</summary>
    private static int _selecting;

    /// <summary>1 while a wake byte is on its way and not yet read.</summary>
    private static int _wakePending;

    private static readonly byte[] Drain = new byte[64];

    private static readonly Lazy<(Socket Send, Socket Receive)?> WakeSocket = new(CreateWakePair, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Runs <paramref name="work"/> now on the tensor thread, else queues it there without waiting.</summary>
    private static void OnThread(Action work)
    {
        if (_onTensorThread)
        {
            work();
        }
        else
        {
            Enqueue(work);
        }
    }

    private static void Enqueue(Action item)
    {
        Queue.Value.Add(item);
        Interlocked.MemoryBarrier(); // the add before the read of _selecting; the thread sets it before its last look at the queue
        if (Volatile.Read(ref _selecting) == 1 && Interlocked.Exchange(ref _wakePending, 1) == 0 && WakeSocket.Value is var (send, _))
        {
            try
            {
                send.Send([1], SocketFlags.None, out _); // non-blocking; a full buffer means the thread has wakes to read already
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>
    /// Two connected sockets: a byte sent on one wakes the thread waiting on the other. A Unix-domain pair
    /// (in the abstract namespace on Linux, no file) where the system has them: a byte through it costs a
    /// fraction of one through loopback TCP, which is the fallback.
    /// </summary>
    private static (Socket Send, Socket Receive)? CreateWakePair()
    {
        if (Socket.OSSupportsUnixDomainSockets && OperatingSystem.IsLinux())
        {
            try
            {
                return ConnectedPair(AddressFamily.Unix, ProtocolType.Unspecified, new UnixDomainSocketEndPoint($"\0pollen-wake-{Environment.ProcessId}-{Guid.NewGuid():N}"));
            }
            catch (SocketException)
            {
            }
        }
        try
        {
            return ConnectedPair(AddressFamily.InterNetwork, ProtocolType.Tcp, new IPEndPoint(IPAddress.Loopback, 0));
        }
        catch (SocketException)
        {
            return null; // no loopback: watched sockets are then polled between waits instead (see Select)
        }
    }

    private static (Socket Send, Socket Receive) ConnectedPair(AddressFamily family, ProtocolType protocol, EndPoint endPoint)
    {
        using var listener = new Socket(family, SocketType.Stream, protocol);
        listener.Bind(endPoint);
        listener.Listen(1);
        var send = new Socket(family, SocketType.Stream, protocol);
        try
        {
            send.Connect(listener.LocalEndPoint!);
            var receive = listener.Accept();
            send.Blocking = false;
            receive.Blocking = false;
            return (send, receive);
        }
        catch
        {
            send.Dispose();
            throw;
        }
    }

    private static BlockingCollection<Action> Start()
    {
        var queue = new BlockingCollection<Action>();
        var thread = new Thread(() => Run(queue)) { IsBackground = true, Name = "pollen-tensors" };
        thread.Start();
        return queue;
    }

    private static void Run(BlockingCollection<Action> queue)
    {
        _onTensorThread = true;
        var ready = new List<Socket>();
        while (true)
        {
            if (!queue.TryTake(out var item))
            {
                if (Watched.Count == 0)
                {
                    item = queue.Take();
                }
                else if (!Select(queue, ready, out item))
                {
                    continue;
                }
            }
            item(); // never throws: each item completes its task with the result or the exception
        }
    }

    /// <summary>
    /// Waits for an item or a watched socket; runs the handlers of the sockets that are readable and returns
    /// false, or returns true with an item that came first.
    /// </summary>
    private static bool Select(BlockingCollection<Action> queue, List<Socket> ready, out Action item)
    {
        var wake = WakeSocket.Value;
        Volatile.Write(ref _selecting, 1);
        Interlocked.MemoryBarrier(); // _selecting set before the last look at the queue (see Enqueue)
        if (queue.TryTake(out item!))
        {
            Volatile.Write(ref _selecting, 0);
            return true;
        }
        ready.Clear();
        ready.AddRange(Watched.Keys);
        if (wake is var (_, receive))
        {
            ready.Add(receive);
        }
        try
        {
            // without a wake socket, look at the queue every millisecond
            Socket.Select(ready, null, null, wake is null ? 1000 : -1);
        }
        catch (SocketException)
        {
            ready.Clear(); // nothing is known to be readable; the handlers find out for themselves next time
        }
        catch (ObjectDisposedException)
        {
            // a socket was disposed while watched, against the rule: forget it
            foreach (var disposed in Watched.Keys.Where(w => w.SafeHandle.IsClosed).ToList())
            {
                Watched.Remove(disposed);
            }
            ready.Clear();
        }
        finally
        {
            Volatile.Write(ref _selecting, 0);
        }
        foreach (var socket in ready)
        {
            if (wake is var (_, wakeReceive) && socket == wakeReceive)
            {
                Volatile.Write(ref _wakePending, 0); // before the read: a wake sent after it is never lost
                while (wakeReceive.Receive(Drain, SocketFlags.None, out var error) > 0 && error == SocketError.Success)
                {
                }
            }
            else if (Watched.TryGetValue(socket, out var onReadable)) // unwatched by an earlier handler: skipped
            {
                try
                {
                    onReadable();
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // a handler that throws loses its socket, not the thread
                    Watched.Remove(socket);
                }
            }
        }
        return false;
    }
}
