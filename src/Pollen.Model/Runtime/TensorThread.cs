using System.Collections.Concurrent;

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
        Queue.Value.Add(() =>
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

    private static BlockingCollection<Action> Start()
    {
        var queue = new BlockingCollection<Action>();
        var thread = new Thread(() =>
        {
            _onTensorThread = true;
            foreach (var item in queue.GetConsumingEnumerable())
            {
                item(); // never throws: each item completes its task with the result or the exception
            }
        })
        { IsBackground = true, Name = "pollen-tensors" };
        thread.Start();
        return queue;
    }
}
