using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Inference.Protos;
using Pollen.Inference.Wire;
using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Layers;
using Pollen.Model.Llama;
using Pollen.Model.Runtime;
using Pollen.Swarm.Tensors;
using static TorchSharp.torch;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Inference.Server;

/// <summary>
/// Hosts blocks <see cref="StartBlock"/>..<see cref="EndBlock"/>-1 of a model: stateless forward and
/// backward, and inference sessions each holding a <see cref="Model.Layers.KvCache"/> under a budget of
/// <see cref="BlockServerOptions.CacheTokens"/> tokens.
/// </summary>
/// <remarks>
/// Every request is checked against the model before any tensor work, on the thread it arrived on: message
/// format, dtype, shape (batch, tokens, hidden_size), the block range, the session's remaining length, and
/// the values themselves (finite activations, positions in range), read on the message's bytes. Failures are <see cref="RpcException"/>s with a status code and a message
/// saying what to change; nothing else leaves this class. The budget is reserved in full at open
/// (batch × max length), so a session is refused up front rather than failing mid-generation when the
/// server runs out of memory. Idle sessions are swept on the injected clock.
/// </remarks>
public sealed partial class BlockServer : IDisposable
{
    /// <summary>A session whose last step arrived longer ago than this is not waited for by the batching window.</summary>
    private const long ActiveSessionMilliseconds = 1000;

    private readonly Block[] _blocks;
    private readonly BlockServerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ComputeQueue _queue;
    private readonly Dictionary<long, BlockSession> _sessions = [];
    private readonly Lock _lock = new();
    private readonly ITimer _sweeper;
    private long _reserved;
    private long _nextSessionId;
    private long _batchedSteps;
    private long _sharedCaches;
    private long _lastCohort;
    private long _tokensServed;

    /// <summary>Serves <paramref name="blocks"/>, which must be consecutive blocks of one model; the server owns and disposes them.</summary>
    public BlockServer(IReadOnlyList<Block> blocks, BlockServerOptions options, TimeProvider? time = null, ILogger<BlockServer>? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(blocks.Count);
        options.Validate();
        for (var i = 1; i < blocks.Count; i++)
        {
            if (blocks[i].LayerIndex != blocks[0].LayerIndex + i)
            {
                throw new ArgumentException("the blocks are not consecutive", nameof(blocks));
            }
        }
        _blocks = [.. blocks];
        _options = options;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger<BlockServer>.Instance;
        Config = blocks[0].Config;
        StartBlock = blocks[0].LayerIndex;
        EndBlock = StartBlock + blocks.Count;
        Dtype = blocks[0].parameters().First().dtype;
        Layout = options.WeightLayout switch
        {
            WeightLayout.Auto => Dtype == ScalarType.Float32 && get_num_threads() == 1 ? WeightLayout.ColumnMajor : WeightLayout.RowMajor,
            var chosen => chosen,
        };
        if (Layout == WeightLayout.ColumnMajor)
        {
            foreach (var block in _blocks)
            {
                block.UseColumnMajorWeights(); // the server owns its blocks
            }
        }
        _queue = new ComputeQueue(options.BatchingWindow, options.MaxBatchSessions, JoinableSessions, RunBatch);
        var sweep = options.IdleTimeout / 4;
        _sweeper = _time.CreateTimer(_ => SweepIdle(), null, sweep, sweep);
        Log.Serving(_logger, options.ModelId, StartBlock, EndBlock - 1, Dtype, Layout, options.CacheTokens, options.IdleTimeout, options.BatchingWindow);
    }

    /// <summary>Loads blocks <paramref name="start"/>..<paramref name="end"/>-1 from a checkpoint directory and serves them.</summary>
    public static BlockServer Load(string directory, int start, int end, BlockServerOptions options, ScalarType dtype = ScalarType.Float32,
        TimeProvider? time = null, ILogger<BlockServer>? logger = null) =>
        new(ModelCheckpoint.LoadBlocks(directory, start, end, dtype), options, time, logger);

    /// <summary>The model's shape.</summary>
    public ModelConfig Config { get; }

    /// <summary>First block served.</summary>
    public int StartBlock { get; }

    /// <summary>One past the last block served.</summary>
    public int EndBlock { get; }

    /// <summary>Dtype of the weights.</summary>
    public ScalarType Dtype { get; }

    /// <summary>How the linear weights are stored (<see cref="WeightLayout.Auto"/> resolved).</summary>
    public WeightLayout Layout { get; }

    /// <summary>The options in effect.</summary>
    public BlockServerOptions Options => _options;

    /// <summary>Open sessions.</summary>
    public int SessionCount
    {
        get
        {
            lock (_lock)
            {
                return _sessions.Count;
            }
        }
    }

    /// <summary>Tokens of the budget not reserved by open sessions.</summary>
    public long FreeCacheTokens
    {
        get
        {
            lock (_lock)
            {
                return _options.CacheTokens - _reserved;
            }
        }
    }

    /// <summary>Number of batched forwards that stepped more than one session at once.</summary>
    public long BatchedSteps => Interlocked.Read(ref _batchedSteps);

    /// <summary>Number of times a set of sessions that stepped together had its caches moved into one buffer.</summary>
    public long SharedCaches => Interlocked.Read(ref _sharedCaches);

    /// <summary>The blocks served (for tests, on the compute thread only).</summary>
    internal IReadOnlyList<Block> Blocks => _blocks;

    /// <summary>Work items waiting for the compute thread (for tests and metrics).</summary>
    internal int PendingWork => _queue.Pending;

    /// <summary>Runs <paramref name="work"/> on the compute thread, in order with the requests.</summary>
    internal Task<T> RunOnComputeThreadAsync<T>(Func<T> work) => _queue.RunAsync(work);

    /// <summary>The server's description.</summary>
    public InfoReply Info() => new()
    {
        ModelId = _options.ModelId,
        StartBlock = StartBlock,
        EndBlock = EndBlock,
        Dtype = TensorWire.ToWire(Dtype),
        MaxCacheTokens = _options.CacheTokens,
        FreeCacheTokens = FreeCacheTokens,
        HiddenSize = (int)Config.HiddenSize,
        MaxPosition = Config.MaxPositionEmbeddings,
        ConfigFingerprint = Config.Fingerprint(),
    };

    /// <summary>Runs a stateless forward.</summary>
    public Task<WireTensor> ForwardAsync(ForwardRequest request)
    {
        var (start, end) = CheckRange(request.Blocks);
        var (batch, tokens) = CheckHidden(request.Hidden, "hidden", null);
        CheckPositionsShape(request.Positions, batch, tokens);
        CheckValues(request.Hidden!, request.Positions, Config.MaxPositionEmbeddings);
        return _queue.RunAsync(() =>
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var (hidden, positions) = DecodeInputs(request.Hidden!, request.Positions, batch, tokens);
            for (var i = start; i < end; i++)
            {
                hidden = _blocks[i - StartBlock].forward(hidden, positions);
            }
            return TensorWire.Encode(hidden, TensorWire.FromWire(request.Hidden.Dtype));
        });
    }

    /// <summary>Runs a stateless backward: the gradient with respect to the input hidden states.</summary>
    public Task<WireTensor> BackwardAsync(BackwardRequest request)
    {
        var (start, end) = CheckRange(request.Blocks);
        var (batch, tokens) = CheckHidden(request.Hidden, "hidden", null);
        CheckHidden(request.GradOutput, "grad_output", (batch, tokens));
        CheckPositionsShape(request.Positions, batch, tokens);
        CheckValues(request.Hidden!, request.Positions, Config.MaxPositionEmbeddings);
        CheckFinite(request.GradOutput!, "grad_output");
        return _queue.RunAsync(() =>
        {
            using var scope = NewDisposeScope();
            using var gradMode = enable_grad();
            var (input, positions) = DecodeInputs(request.Hidden!, request.Positions, batch, tokens);
            var gradOutput = TensorWire.Decode(request.GradOutput, _options.MaxMessageBytes).to_type(Dtype);
            // weights stay frozen: only the input asks for a gradient
            input = input.detach().requires_grad_(true);
            var hidden = input;
            for (var i = start; i < end; i++)
            {
                hidden = _blocks[i - StartBlock].forward(hidden, positions);
            }
            var grad = autograd.grad([hidden], [input], [gradOutput])[0];
            return TensorWire.Encode(grad, TensorWire.FromWire(request.Hidden.Dtype));
        });
    }

    /// <summary>Opens a session, reserving its tokens; refuses with RESOURCE_EXHAUSTED when the budget has no room.</summary>
    internal BlockSession OpenSession(OpenSession open, CancellationTokenSource expired)
    {
        var (start, end) = CheckRange(open.Blocks);
        var batch = open.BatchSize == 0 ? 1 : open.BatchSize;
        if (batch < 1)
        {
            throw Invalid($"batch_size must be at least 1, got {open.BatchSize}");
        }
        if (open.MaxLength < 1 || open.MaxLength > Config.MaxPositionEmbeddings)
        {
            throw new RpcException(new Status(StatusCode.OutOfRange, $"max_length must be in 1..{Config.MaxPositionEmbeddings} (the model's context), got {open.MaxLength}"));
        }
        var needed = (long)open.MaxLength * batch;
        lock (_lock)
        {
            var free = _options.CacheTokens - _reserved;
            if (needed > free)
            {
                Log.SessionRefused(_logger, needed, free, _options.CacheTokens);
                throw new RpcException(new Status(StatusCode.ResourceExhausted,
                    $"the session needs {needed} cache tokens (batch {batch} × max_length {open.MaxLength}) but only {free} of {_options.CacheTokens} are free; retry later or use another server"));
            }
            var session = new BlockSession(++_nextSessionId, start, end, open.MaxLength, batch, expired, _time.GetUtcNow());
            _sessions[session.Id] = session;
            _reserved += needed;
            return session;
        }
    }

    /// <summary>
    /// Runs one step of a session on the tensor thread: handed there directly when the server is idle and
    /// no other session could join it in a batch, else through the server's queue. The returned work
    /// completes when the step has run. A step that fails its checks throws before anything changes; one that
    /// passes them is counted in <see cref="PushesReceived"/> when <paramref name="pushed"/>.
    /// </summary>
    internal StepWork StepAsync(BlockSession session, InferenceStep step, bool pushed = false)
    {
        var (_, tokens) = CheckHidden(step.Hidden, "hidden", (session.BatchSize, null));
        CheckPositionsShape(step.Positions ?? throw Invalid("a step needs positions (batch_size, tokens) int64"), session.BatchSize, tokens);
        CheckValues(step.Hidden!, step.Positions, session.MaxLength);
        if (session.AcceptedTokens + tokens > session.MaxLength)
        {
            throw new RpcException(new Status(StatusCode.OutOfRange,
                $"the session holds {session.AcceptedTokens} tokens and {tokens} more would exceed its max_length of {session.MaxLength}; open a longer session"));
        }
        StepWork work;
        bool inline;
        lock (_lock)
        {
            if (session.Closed)
            {
                throw new RpcException(new Status(StatusCode.NotFound, "the session is closed (idle too long?); open a new one"));
            }
            session.LastUsed = _time.GetUtcNow();
            session.LastStepTicks = Environment.TickCount64;
            session.AcceptedTokens += tokens;
            if (pushed)
            {
                // counted before it can run: its answer may leave from the tensor thread before this returns
                Interlocked.Increment(ref _pushesReceived);
            }
            // queued (or the compute lock taken) under the lock, so a close, which queues the cache's
            // disposal, is ordered after it
            work = new StepWork(session, step, RunStep);
            inline = !(work.Batchable && CountJoinable(session) > 1) && _queue.TryEnterInline();
            if (!inline)
            {
                _queue.Add(work);
            }
        }
        if (inline)
        {
            // handed over without waiting: a request thread blocked here is a thread the pool does not have
            _ = TensorThread.InvokeAsync(() =>
            {
                try
                {
                    work.Execute();
                }
                finally
                {
                    _queue.ExitInline();
                }
                return true;
            });
        }
        return work;
    }

    /// <summary>Closes a session and frees its reservation; the cache is freed on the compute thread.</summary>
    internal void CloseSession(BlockSession session)
    {
        lock (_lock)
        {
            if (session.Closed)
            {
                return;
            }
            session.Closed = true;
            _sessions.Remove(session.Id);
            _reserved -= session.ReservedTokens;
            _ = _queue.RunAsync(() =>
            {
                session.Cache.Dispose();
                return true;
            });
        }
    }

    private WireTensor RunStep(StepWork work)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var session = work.Session;
        var tokens = (int)work.Step.Hidden.Shape[1];
        var (hidden, positions) = DecodeInputs(work.Step.Hidden, work.Step.Positions, session.BatchSize, tokens);
        // one-token steps with low-precision weights run faster without oneDNN (see OneDnn)
        using var dnn = tokens == 1 && Dtype != ScalarType.Float32 ? Model.Runtime.OneDnn.Suspend() : default;
        for (var i = session.Start; i < session.End; i++)
        {
            hidden = _blocks[i - StartBlock].forward(hidden, positions, session.Cache);
        }
        lock (_lock)
        {
            (session.Cohort, session.CohortSize) = (work.Batchable ? ++_lastCohort : 0, 1);
        }
        Interlocked.Add(ref _tokensServed, (long)tokens * session.BatchSize);
        var output = TensorWire.Encode(hidden, TensorWire.FromWire(work.Step.Hidden.Dtype));
        SendOn([work], [output]); // on its way before the step's continuation is even scheduled
        return output;
    }

    /// <summary>
    /// Runs one-token steps of single-row sessions over the same sub-span, all sent in the same wire dtype,
    /// as one <see cref="Block.ForwardSessions"/>. The rows go from the messages into one tensor and back
    /// by byte copies (their values were checked on arrival), so a batch costs the same few torch calls
    /// however many sessions it holds.
    /// </summary>
    private void RunBatch(IReadOnlyList<StepWork> batch)
    {
        var rows = batch.Select(w => (Work: w, Position: w.Step.Positions is { Bytes.Length: > 0 } p ? TensorWire.Int64Range(p).Min : 0)).ToList();
        // rows in session order, so a set of sessions that keeps stepping together keeps its rows
        rows.Sort((a, b) => a.Work.Session.Id.CompareTo(b.Work.Session.Id));
        var good = rows.ConvertAll(r => r.Work);
        var positions = rows.ConvertAll(r => r.Position);
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            // oneDNN stays on: it only slows down one-row steps; with several rows it is the fast path for
            // low-precision weights (bf16, 768×2048, 8 rows: ~0.5 ms with it, ~2 ms without)
            var wireDtype = good[0].Step.Hidden.Dtype;
            var rowBytes = good[0].Step.Hidden.Bytes.Length;
            var input = empty([good.Count, 1, Config.HiddenSize], TensorWire.FromWire(wireDtype)); // (N, 1, C)
            var inputBytes = input.bytes;
            for (var r = 0; r < good.Count; r++)
            {
                good[r].Step.Hidden.Bytes.Span.CopyTo(inputBytes.Slice(r * rowBytes, rowBytes));
            }
            var position = tensor(positions.ToArray(), [good.Count, 1]); // (N, 1)
            var hidden = input.to_type(Dtype);
            var caches = good.ConvertAll(w => w.Session.Cache);
            if (RanTogetherLastTime(good) && !KvCache.AreShared(caches) && KvCache.Share(caches))
            {
                Interlocked.Increment(ref _sharedCaches);
            }
            var first = good[0].Session;
            for (var i = first.Start; i < first.End; i++)
            {
                hidden = _blocks[i - StartBlock].ForwardSessions(hidden, position, caches);
            }
            Interlocked.Increment(ref _batchedSteps);
            Interlocked.Add(ref _tokensServed, good.Count);
            lock (_lock)
            {
                var cohort = ++_lastCohort;
                good.ForEach(w => (w.Session.Cohort, w.Session.CohortSize) = (cohort, good.Count));
            }
            var output = hidden.to_type(input.dtype).contiguous();
            var outputBytes = output.bytes;
            long[] shape = [1, 1, Config.HiddenSize];
            var outputs = new WireTensor[good.Count];
            for (var r = 0; r < good.Count; r++)
            {
                outputs[r] = TensorCodec.Encode(outputBytes.Slice(r * rowBytes, rowBytes), shape, wireDtype);
            }
            // on their way to the next servers before the steps' own continuations even start
            SendOn(good, outputs);
            for (var r = 0; r < good.Count; r++)
            {
                good[r].Completion.SetResult(outputs[r]);
            }
        }
        catch (Exception e)
        {
            foreach (var work in good)
            {
                work.Fail(e);
            }
        }
    }

    /// <summary>
    /// Whether these sessions, and only they, ran together in the last batch of each: a set that steps
    /// together twice is likely to go on doing so, which is when moving their caches into one buffer
    /// (a copy of what they hold) pays for itself.
    /// </summary>
    private bool RanTogetherLastTime(List<StepWork> batch)
    {
        lock (_lock)
        {
            var cohort = batch[0].Session.Cohort;
            return batch.Count > 1 && cohort != 0 && batch.TrueForAll(w => w.Session.Cohort == cohort && w.Session.CohortSize == batch.Count);
        }
    }

    /// <summary>
    /// How many sessions the batch that <paramref name="first"/> starts should wait for (itself included).
    /// After a one-token step, the sessions of its last batch: they ran together, so they come back
    /// together, while sessions that ran in another batch are in another phase of the pipeline (waiting
    /// for them would cost the whole window on every hop, and they are batched anyway when they arrive
    /// together). After a prompt, or at the first step, every open single-row session over the same blocks
    /// whose last step arrived within <see cref="ActiveSessionMilliseconds"/>: sessions that start together
    /// are gathered into one batch. A lone session therefore never waits.
    /// </summary>
    private int JoinableSessions(StepWork first)
    {
        lock (_lock)
        {
            return CountJoinable(first.Session);
        }
    }

    /// <summary><see cref="JoinableSessions"/>, under the lock.</summary>
    private int CountJoinable(BlockSession first)
    {
        var since = Environment.TickCount64 - ActiveSessionMilliseconds;
        var count = 0;
        foreach (var session in _sessions.Values)
        {
            if (session.BatchSize == 1 && session.Start == first.Start && session.End == first.End
                && (first.Cohort != 0 ? session.Cohort == first.Cohort : session.LastStepTicks >= since))
            {
                count++;
            }
        }
        return Math.Max(count, 1);
    }

    private void SweepIdle()
    {
        List<BlockSession> expired;
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            expired = [.. _sessions.Values.Where(s => now - s.LastUsed >= _options.IdleTimeout)];
        }
        foreach (var session in expired)
        {
            Log.SessionExpired(_logger, session.Id, _options.IdleTimeout);
            CloseSession(session);
            session.Expire();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _sweeper.Dispose();
        List<BlockSession> open;
        lock (_lock)
        {
            open = [.. _sessions.Values];
        }
        foreach (var session in open)
        {
            CloseSession(session);
        }
        _queue.Dispose();
        DisposePushStreams();
        foreach (var block in _blocks)
        {
            block.Dispose();
        }
    }
}
