using Pollen.Model.Layers;

namespace Pollen.Inference.Server;

/// <summary>
/// One inference session on a block server: its sub-span, its reservation of the cache budget and its
/// <see cref="KvCache"/>. The cache is touched only under the server's compute lock; the stream handler tracks the
/// tokens it has accepted (<see cref="AcceptedTokens"/>) so it can refuse a step that would overflow
/// before queueing any work.
/// </summary>
internal sealed class BlockSession
{
    private readonly CancellationTokenSource _expired;
    private volatile byte[] _pushToken;

    internal BlockSession(long id, int start, int end, int maxLength, int batchSize, CancellationTokenSource expired, DateTimeOffset now)
    {
        Id = id;
        Start = start;
        End = end;
        MaxLength = maxLength;
        BatchSize = batchSize;
        _expired = expired;
        LastUsed = now;
        Cache = new KvCache(maxLength);
        _pushToken = System.Security.Cryptography.RandomNumberGenerator.GetBytes(PushTokenBytes);
    }

    /// <summary>Length of <see cref="PushToken"/>.</summary>
    internal const int PushTokenBytes = 16;

    internal long Id { get; }

    internal int Start { get; }

    internal int End { get; }

    internal int MaxLength { get; }

    internal int BatchSize { get; }

    /// <summary>Tokens reserved in the server's budget.</summary>
    internal long ReservedTokens => (long)MaxLength * BatchSize;

    /// <summary>Tokens of steps accepted so far (queued or done); only the stream handler changes it.</summary>
    internal int AcceptedTokens { get; set; }

    /// <summary>
    /// When the last step arrived, in <see cref="Environment.TickCount64"/> milliseconds (the batching window
    /// is a latency matter on the system clock, not a timeout); read and written under the server's lock.
    /// </summary>
    internal long LastStepTicks { get; set; } = long.MinValue / 2;

    /// <summary>
    /// The batched forward its last one-token step ran in (a batch of one included), or 0 after any other
    /// step: sessions that ran together last time are expected together next time. Read and written
    /// under the server's lock.
    /// </summary>
    internal long Cohort { get; set; }

    /// <summary>How many sessions ran in <see cref="Cohort"/>; under the server's lock.</summary>
    internal int CohortSize { get; set; }

    /// <summary>Time of the last step or open; read and written under the server's lock.</summary>
    internal DateTimeOffset LastUsed { get; set; }

    /// <summary>Set once the session is closed or expired; read and written under the server's lock.</summary>
    internal bool Closed { get; set; }

    /// <summary>True when the session ended because it was idle too long.</summary>
    internal bool Expired { get; private set; }

    /// <summary>The session's cache; used and disposed only under the server's compute lock.</summary>
    internal KvCache Cache { get; }

    /// <summary>
    /// The secret a server must present to push steps into this session (told to the client at open and at each
    /// sync). Read anywhere; replaced only under <see cref="StepGate"/>.
    /// </summary>
    internal byte[] PushToken => _pushToken;

    /// <summary>Replaces the push token (under <see cref="StepGate"/>): pushes made with the old one are dropped.</summary>
    internal byte[] RenewPushToken() =>
        _pushToken = System.Security.Cryptography.RandomNumberGenerator.GetBytes(PushTokenBytes);

    /// <summary>
    /// Output of every step run, in order (step i's at i - 1), so a client can rebuild the next server's inputs
    /// after a failure without having been sent them; under <see cref="StepGate"/>. Bounded by the session's
    /// length, like its cache (hidden_size values a token, against the cache's two per block).
    /// </summary>
    internal List<Pollen.Swarm.Protos.Tensor> Outputs { get; } = [];

    /// <summary>
    /// Serializes the session's steps, wherever they come from (its client's stream or a push), together
    /// with the writes of their replies: a stream takes one write at a time, and steps must run in order.
    /// </summary>
    internal SemaphoreSlim StepGate { get; } = new(1, 1);

    /// <summary>step_id of the last step run (0 before the first): the number of steps run; under <see cref="StepGate"/>.</summary>
    internal ulong LastStepId => (ulong)Outputs.Count;

    /// <summary>
    /// Writes a reply on the session's stream (ending with it); set by the stream handler once the session is open.
    /// Called with <see cref="StepGate"/> held: the stream takes one write at a time.
    /// </summary>
    internal Func<Protos.InferenceReply, Task>? Reply { get; set; }

    /// <summary>The secret its client alone presents to have its answers sent on a push-lane connection (never renewed).</summary>
    internal byte[] AnswerToken { get; } = System.Security.Cryptography.RandomNumberGenerator.GetBytes(PushTokenBytes);

    /// <summary>
    /// The push-lane connection its client asked to get the answers of quiet steps on (<c>PushBatch.listen</c>),
    /// or null: they go on the stream.
    /// </summary>
    internal IAnswerLane? AnswerLane
    {
        get => Volatile.Read(ref field);
        set => Volatile.Write(ref field, value);
    }

    /// <summary>Why the session was ended from outside its stream (a bad push), or null.</summary>
    internal Grpc.Core.RpcException? Failure { get; private set; }

    internal void Expire()
    {
        Expired = true;
        _expired.Cancel();
    }

    /// <summary>Ends the session's stream with <paramref name="failure"/> (from a push, which has no way to tell the client itself).</summary>
    internal void Abort(Grpc.Core.RpcException failure)
    {
        Failure ??= failure;
        try
        {
            _expired.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // the stream already ended
        }
    }
}
