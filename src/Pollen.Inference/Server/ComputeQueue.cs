using System.Collections.Concurrent;

namespace Pollen.Inference.Server;

/// <summary>
/// Serializes all tensor work of a block server on one dedicated thread, and runs one-token steps of
/// different sessions that arrive together as one batched forward.
/// </summary>
/// <remarks>
/// One thread because the blocks' weights are shared and libtorch already spreads each op over its own
/// threads: running two forwards at once would only make them compete, while batching them reads the
/// weights once for all sessions (decode is bound by memory bandwidth, so N sessions cost little more
/// than one). The batching window is measured on the system clock, not the injected
/// <see cref="TimeProvider"/>: it is a latency trade-off of a few milliseconds, not a timeout a test
/// needs to control, and it must never wait on a fake clock. A batch holds only steps over the same
/// sub-span sent in the same wire dtype; other work found while collecting runs right after the batch,
/// in arrival order.
/// The window is spent only while a batch can still grow: the queue asks the server how many sessions
/// could join the first step's batch (open, single-row, same sub-span, and stepping lately) and stops
/// waiting once that many are in. A lone session therefore never waits (on a 4-hop route a fixed 2 ms
/// window cost ~3 ms per hop, a sixth of a 50M-parameter model's decoding step), while concurrent
/// sessions are gathered into one forward and stay in step with each other.
/// </remarks>
internal sealed class ComputeQueue : IDisposable
{
    private readonly BlockingCollection<WorkItem> _items = [];
    private readonly Thread _thread;
    private readonly TimeSpan _window;
    private readonly int _maxBatch;
    private readonly Func<StepWork, int> _joinable;
    private readonly Action<IReadOnlyList<StepWork>> _runBatch;

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
        while (true)
        {
            WorkItem item;
            if (deferred.Count > 0)
            {
                item = deferred.Dequeue();
            }
            else if (!_items.TryTake(out item!, Timeout.Infinite))
            {
                return; // completed and drained
            }
            if (item is not StepWork { Batchable: true } first)
            {
                item.Execute();
                continue;
            }
            var batch = new List<StepWork> { first };
            var deadline = Environment.TickCount64 + (long)_window.TotalMilliseconds;
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
            if (batch.Count == 1)
            {
                first.Execute();
            }
            else
            {
                _runBatch(batch);
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _items.CompleteAdding();
        _thread.Join();
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
