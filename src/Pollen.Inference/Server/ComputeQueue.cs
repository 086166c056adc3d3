using System.Collections.Concurrent;
using System.Diagnostics;
using Pollen.Model.Runtime;

namespace Pollen.Inference.Server;

/// <summary>
/// Orders all tensor work of a block server on one dedicated thread, and runs one-token steps of
/// different sessions that arrive together as one batched forward.
/// </summary>
/// <remarks>
/// <para>
/// One at a time because the blocks' weights are shared and libtorch already spreads each op over its
/// own threads: running two forwards at once would only make them compete, while batching them reads the
/// weights once for all sessions. A batch holds only steps over the same sub-span sent in the same wire
/// dtype; other work found while collecting runs right after the batch, in arrival order.
/// </para>
/// <para>
/// The window is spent only while the batch can still grow: the server says how many sessions the first
/// step's batch should expect (<c>joinable</c>: the sessions it ran with last time, or every recently
/// active one after a prompt), and the queue stops waiting once they are in. It is also capped by the
/// duration of the last forward, since waiting for a straggler longer than it would take to run it on
/// its own gains nothing. A lone session never waits: with a fixed 2 ms window a 4-hop route lost ~3 ms
/// per hop, a sixth of a 50M-parameter model's decoding step, while a window that ignored which sessions
/// run together let 8 concurrent sessions fall into fragments of 1 to 5. The window is measured on the
/// system clock, not the injected <see cref="TimeProvider"/>: it is a latency trade-off of milliseconds,
/// not a timeout a test needs to control, and it must never wait on a fake clock.
/// </para>
/// <para>
/// Session steps, alone or batched, run on the process's <see cref="TensorThread"/>, where libtorch's
/// per-thread state stays warm; the rest (stateless forward and backward, cache disposal, new weights)
/// runs on this queue's thread. When nothing is queued or running, a step that would not wait for others
/// skips the queue (<see cref="TryEnterInline"/>): the request's thread hands it to the tensor thread
/// itself, without waiting for it, which saves waking the queue's thread on every hop. One semaphore
/// serializes both paths, so a server's tensor work still never runs twice at once.
/// </para>
/// </remarks>
internal sealed class ComputeQueue : IDisposable
{
    private readonly BlockingCollection<WorkItem> _items = [];
    private readonly Thread _thread;
    private readonly TimeSpan _window;
    private readonly int _maxBatch;
    private readonly Func<StepWork, int> _joinable;
    private readonly Action<IReadOnlyList<StepWork>> _runBatch;

    /// <summary>
    /// Held while tensor work runs, by the compute thread or by a step run inline; a semaphore, not a lock,
    /// because an inline step is released on the tensor thread, not on the thread that took it.
    /// </summary>
    private readonly SemaphoreSlim _compute = new(1, 1);
    private bool _disposed;

    /// <summary>Duration of the last one-token forward run by the compute thread; caps the batching window.</summary>
    private double _lastForwardMilliseconds = double.MaxValue;

    /// <param name="window">Longest wait for more steps after the first batchable one.</param>
    /// <param name="maxBatch">Most steps in one batch.</param>
    /// <param name="joinable">How many sessions (the first step's included) could be in a batch with this step; the wait ends once the batch has them.</param>
    /// <param name="runBatch">Runs two or more batchable steps as one forward.</param>
    internal ComputeQueue(TimeSpan window, int maxBatch, Func<StepWork, int> joinable, Action<IReadOnlyList<StepWork>> runBatch)
    {
        _window = window;
        _maxBatch = maxBatch;
        _joinable = joinable;
        _runBatch = runBatch;
        _thread = new Thread(Run) { IsBackground = true, Name = "pollen-blocks-compute" };
        _thread.Start();
    }

    /// <summary>Items queued and not yet taken by the compute thread.</summary>
    internal int Pending => _items.Count;

    /// <summary>Runs <paramref name="work"/> on the compute thread.</summary>
    internal Task<T> RunAsync<T>(Func<T> work)
    {
        var item = new FuncWork<T>(work);
        Add(item);
        return item.Completion.Task;
    }

    /// <summary>
    /// Takes the right to run tensor work outside the queue, when no work is queued or running; the caller
    /// then hands it to the tensor thread, which calls <see cref="ExitInline"/> once it has run. Work queued
    /// meanwhile waits for it.
    /// </summary>
    internal bool TryEnterInline()
    {
        if (_items.Count > 0 || !_compute.Wait(0))
        {
            return false;
        }
        if (_disposed || _items.Count > 0)
        {
            _compute.Release();
            return false;
        }
        return true;
    }

    /// <summary>Ends tensor work started after <see cref="TryEnterInline"/>.</summary>
    internal void ExitInline() => _compute.Release();

    /// <summary>Queues a step that may be batched with steps of other sessions.</summary>
    internal void Add(WorkItem item)
    {
        try
        {
            _items.Add(item);
        }
        catch (InvalidOperationException)
        {
            item.Fail(new ObjectDisposedException(nameof(ComputeQueue), "the server is shutting down"));
        }
    }

    private void Run()
    {
        var deferred = new Queue<WorkItem>();
        var holding = false;
        while (true)
        {
            WorkItem item;
            if (deferred.Count > 0)
            {
                item = deferred.Dequeue();
            }
            else
            {
                // while this thread has work in hand (collecting a batch included) nothing runs inline
                if (holding)
                {
                    _compute.Release();
                    holding = false;
                }
                if (!_items.TryTake(out item!, Timeout.Infinite))
                {
                    return; // completed and drained
                }
                _compute.Wait();
                holding = true;
            }
            if (item is not StepWork { Batchable: true } first)
            {
                if (item is StepWork)
                {
                    TensorThread.Invoke(item.Execute);
                }
                else
                {
                    item.Execute(); // the rest (forward, backward, cache disposal, new weights) on this server's own thread
                }
                continue;
            }
            var batch = new List<StepWork> { first };
            // waiting for a straggler is worth at most what running it in a forward of its own would cost
            var window = Math.Min(_window.TotalMilliseconds, _lastForwardMilliseconds);
            var deadline = Environment.TickCount64 + (long)Math.Ceiling(window);
            var expected = _joinable(first);
            while (batch.Count < _maxBatch)
            {
                // steps already queued are always taken; waiting only while someone may still come
                var wait = batch.Count >= expected ? 0 : (int)Math.Max(0, deadline - Environment.TickCount64);
                if (!_items.TryTake(out var next, wait))
                {
                    break;
                }
                if (next is StepWork { Batchable: true } step && step.Session.Start == first.Session.Start && step.Session.End == first.Session.End
                    && step.Step.Hidden.Dtype == first.Step.Hidden.Dtype && batch.TrueForAll(s => s.Session != step.Session))
                {
                    batch.Add(step);
                    expected = Math.Max(expected, _joinable(first));
                }
                else
                {
                    deferred.Enqueue(next);
                }
            }
            var start = Stopwatch.GetTimestamp();
            if (batch.Count == 1)
            {
                TensorThread.Invoke(first.Execute);
            }
            else
            {
                TensorThread.Invoke(() => _runBatch(batch));
            }
            _lastForwardMilliseconds = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _items.CompleteAdding();
        _thread.Join();
        _compute.Wait(); // after any inline work has finished
        _disposed = true;
        _compute.Release();
        _items.Dispose();
    }
}

/// <summary>Work for the compute thread.</summary>
internal abstract class WorkItem
{
    /// <summary>Runs the work and completes it; never throws.</summary>
    internal abstract void Execute();

    /// <summary>Completes the work with an error without running it.</summary>
    internal abstract void Fail(Exception error);
}

/// <summary>Arbitrary work with a result.</summary>
internal sealed class FuncWork<T>(Func<T> work) : WorkItem
{
    internal TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal override void Execute()
    {
        try
        {
            Completion.SetResult(work());
        }
        catch (Exception e)
        {
            Completion.SetException(e);
        }
    }

    internal override void Fail(Exception error) => Completion.TrySetException(error);
}

/// <summary>A session step; one-token steps of single-row sessions are batchable.</summary>
internal sealed class StepWork(BlockSession session, Pollen.Inference.Protos.InferenceStep step, Func<StepWork, Pollen.Swarm.Protos.Tensor> run) : WorkItem
{
    internal BlockSession Session { get; } = session;

    internal Pollen.Inference.Protos.InferenceStep Step { get; } = step;

    internal bool Batchable => Session.BatchSize == 1 && Step.Hidden.Shape[1] == 1;

    internal TaskCompletionSource<Pollen.Swarm.Protos.Tensor> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// The push of the output to the step's next server, started on the tensor thread as soon as the output
    /// was encoded (a batched forward's with the batch's other outputs for that server): it yields null when
    /// sent, else why not. Set before the step completes; null when the step names no next target.
    /// </summary>
    internal Task<string?>? Pushed { get; set; }

    /// <summary>
    /// The answer carrying the output to the session's client, started on the tensor thread as soon as the
    /// output was encoded when the step names no next target (else null); set before the step completes.
    /// </summary>
    internal Task? Answered { get; set; }

    internal override void Execute()
    {
        try
        {
            Completion.SetResult(run(this));
        }
        catch (Exception e)
        {
            Completion.SetException(e);
        }
    }

    internal override void Fail(Exception error) => Completion.TrySetException(error);
}
