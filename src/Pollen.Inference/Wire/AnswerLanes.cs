using System.Net.Sockets;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Pollen.Inference.Client;
using Pollen.Inference.Protos;
using Pollen.Inference.Server;
using Pollen.Model.Runtime;

namespace Pollen.Inference.Wire;

/// <summary>
/// A client's connection to the push lane of a server that is the last of some of its routes: the client
/// asks there for the answers of its sessions' quiet steps (<c>PushBatch.listen</c>), and the server writes
/// them back as <see cref="LaneAnswer"/> frames from its tensor thread, instead of on the sessions' gRPC
/// streams. The client's tensor thread reads them (<see cref="TensorThread.Watch"/>) and hands each to its
/// session at once, which computes the head right there.
/// </summary>
internal sealed class AnswerLane
{
    /// <summary>What a frame's body is first read into (an answer is one hidden state).</summary>
    private const int FirstChunk = 64 << 10;

    private readonly Socket _socket;
    private readonly LaneFrameReader _frames;
    private readonly Action<AnswerLane, bool> _lost;
    private readonly Dictionary<string, RemoteSpan> _spans = [];
    private readonly Lock _lock = new();
    private readonly Lock _write = new();
    private bool _closed;

    private AnswerLane(Socket socket, string address, int maxFrameBytes, Action<AnswerLane, bool> lost)
    {
        _socket = socket;
        Address = address;
        _frames = new LaneFrameReader(expectMagic: false, maxFrameBytes, FirstChunk);
        _lost = lost;
    }

    /// <summary>"host:port" of the lane.</summary>
    internal string Address { get; }

    /// <summary>
    /// Connects to the lane at <paramref name="host"/>:<paramref name="port"/> and has the tensor thread read it.
    /// Throws <see cref="PushLaneUnreachableException"/> when it could not connect. <paramref name="lost"/> is
    /// told when it closes, and whether the server sent something malformed.
    /// </summary>
    internal static async Task<AnswerLane> ConnectAsync(string host, int port, int maxFrameBytes, Action<AnswerLane, bool> lost, TimeSpan timeout)
    {
        var socket = await PushLaneWriter.ConnectAsync(host, port, timeout).ConfigureAwait(false);
        try
        {
            socket.Send(PushLane.Magic);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new PushLaneUnreachableException($"could not write to the push lane at {host}:{port}: {e.Message}", e);
        }
        var lane = new AnswerLane(socket, Pollen.Swarm.Transport.PeerAddress.Format(host, port), maxFrameBytes, lost);
        TensorThread.Watch(socket, lane.Read);
        return lane;
    }

    /// <summary>
    /// Asks the server to send the answers of <paramref name="span"/>'s quiet steps here; they go to
    /// <see cref="RemoteSpan.OnLaneAnswer"/>. Throws <see cref="IOException"/> if the lane is closed or the
    /// request could not be written.
    /// </summary>
    internal void Listen(RemoteSpan span)
    {
        lock (_lock)
        {
            if (_closed)
            {
                throw new IOException($"the answer lane to {Address} is closed");
            }
            _spans[span.SessionId] = span;
        }
        var message = new PushBatch();
        message.Listen.Add(new ListenRequest { SessionId = span.SessionId, AnswerToken = span.AnswerToken });
        var frame = PushLane.Frame(message, first: false);
        lock (_write)
        {
            try
            {
                for (var sent = 0; sent < frame.Length;)
                {
                    var n = _socket.Send(frame.AsSpan(sent), SocketFlags.None, out var error);
                    if (error == SocketError.WouldBlock)
                    {
                        if (!_socket.Poll(TimeSpan.FromSeconds(1), SelectMode.SelectWrite))
                        {
                            throw new IOException($"the answer lane to {Address} took nothing for a second");
                        }
                        continue;
                    }
                    if (error != SocketError.Success)
                    {
                        throw new IOException($"could not write to the answer lane to {Address}: {error}");
                    }
                    sent += n;
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                throw new IOException($"could not write to the answer lane to {Address}: {e.Message}", e);
            }
        }
    }

    /// <summary>No longer hands answers to the session <paramref name="sessionId"/> (it closed).</summary>
    internal void Forget(string sessionId)
    {
        lock (_lock)
        {
            _spans.Remove(sessionId);
        }
    }

    /// <summary>On the tensor thread: reads what has arrived (up to <see cref="PushLane.FramesPerTurn"/> frames) and hands each answer to its session.</summary>
    private void Read()
    {
        try
        {
            for (var frames = 0; frames < PushLane.FramesPerTurn; frames++)
            {
                switch (_frames.Receive(_socket, out var body, out var fault))
                {
                    case LaneRead.Nothing:
                        return;
                    case LaneRead.Ended:
                        Fail($"the server closed the answer lane {Address}");
                        return;
                    case LaneRead.Malformed:
                        Fail($"the server at {Address} sent {fault}", malformed: true);
                        return;
                }
                var answer = LaneAnswer.Parser.ParseFrom(body!); // a whole frame: the other cases returned
                RemoteSpan? span;
                lock (_lock)
                {
                    _spans.TryGetValue(answer.SessionId, out span);
                }
                if (answer.Step is { } step)
                {
                    span?.OnLaneAnswer(step); // may go on to compute the head here, on the tensor thread
                }
            }
        }
        catch (InvalidProtocolBufferException e)
        {
            Fail($"the server at {Address} sent a frame that is not an answer ({e.Message})", malformed: true);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Fail($"the answer lane to {Address} failed: {e.Message}");
        }
    }

    /// <summary>On the tensor thread: closes the lane (once) and tells every session listening on it.</summary>
    private void Fail(string reason, bool malformed = false)
    {
        List<RemoteSpan> spans;
        lock (_lock)
        {
            if (_closed)
            {
                return;
            }
            _closed = true;
            spans = [.. _spans.Values];
            _spans.Clear();
        }
        TensorThread.Unwatch(_socket);
        _socket.Dispose();
        _lost(this, malformed);
        var error = new IOException(reason);
        spans.ForEach(s => s.LaneLost(this, error));
    }

    /// <summary>Closes the lane from any thread; its sessions get their answers on their streams again.</summary>
    internal void Close()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        _ = TensorThread.InvokeAsync(() =>
        {
            Fail($"the answer lane to {Address} was closed");
            return true;
        });
    }
}

/// <summary>
/// A client's answer lanes, one per server, created on first use; at most <see cref="PushLaneWriters.MaxWriters"/>.
/// A lane that could not be reached is not tried again for <see cref="PushLane.UnreachableFor"/>: the answers
/// of its sessions come on their streams meanwhile.
/// </summary>
internal sealed class AnswerLanes(int maxFrameBytes) : IDisposable
{
    private readonly Dictionary<(string Address, uint Port), AnswerLane> _lanes = [];
    private readonly Dictionary<(string Address, uint Port), long> _unreachable = []; // → until, TickCount64
    private readonly Lock _lock = new();
    private bool _disposed;

    /// <summary>
    /// Has the answers of <paramref name="span"/>'s quiet steps come on its server's push lane, when it has one
    /// that can be reached; otherwise nothing changes (they come on the session's stream).
    /// </summary>
    internal async Task TryListenAsync(RemoteSpan span, TimeSpan timeout, ILogger logger)
    {
        var key = (span.Server.Address, span.PushPort);
        if (span.PushPort is 0 or > ushort.MaxValue || span.AnswerToken.Length == 0)
        {
            return;
        }
        AnswerLane? lane;
        lock (_lock)
        {
            if (_disposed || (_unreachable.TryGetValue(key, out var until) && Environment.TickCount64 < until))
            {
                return;
            }
            _lanes.TryGetValue(key, out lane);
            if (lane is null && _lanes.Count >= PushLaneWriters.MaxWriters)
            {
                return;
            }
        }
        if (lane is null)
        {
            try
            {
                lane = await AnswerLane.ConnectAsync(Pollen.Swarm.Transport.PeerAddress.Host(span.Server.Address), (int)span.PushPort, maxFrameBytes,
                    (lost, malformed) => Remove(key, lost, malformed), timeout).ConfigureAwait(false);
            }
            catch (PushLaneUnreachableException e)
            {
                lock (_lock)
                {
                    _unreachable[key] = Environment.TickCount64 + (long)PushLane.UnreachableFor.TotalMilliseconds;
                }
                Server.Log.PushLaneUnreachable(logger, span.Server.Address, e.InnerException?.Message ?? e.Message, PushLane.UnreachableFor);
                return;
            }
            AnswerLane? extra = null;
            lock (_lock)
            {
                if (_disposed)
                {
                    (extra, lane) = (lane, null);
                }
                else if (_lanes.TryGetValue(key, out var other))
                {
                    (extra, lane) = (lane, other); // another session connected meanwhile: use that one
                }
                else
                {
                    _lanes[key] = lane;
                }
            }
            extra?.Close();
            if (lane is null)
            {
                return;
            }
        }
        try
        {
            lane.Listen(span);
            span.ListeningOn(lane);
        }
        catch (IOException)
        {
            lane.Close(); // its sessions fall back to their streams; the next step tries a new connection
        }
    }

    /// <summary>Forgets a closed lane; one whose server sent something malformed is not used for <see cref="PushLane.UnreachableFor"/>.</summary>
    private void Remove((string, uint) key, AnswerLane lane, bool malformed)
    {
        lock (_lock)
        {
            if (_lanes.TryGetValue(key, out var current) && current == lane)
            {
                _lanes.Remove(key);
            }
            if (malformed)
            {
                _unreachable[key] = Environment.TickCount64 + (long)PushLane.UnreachableFor.TotalMilliseconds;
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        List<AnswerLane> open;
        lock (_lock)
        {
            _disposed = true;
            open = [.. _lanes.Values];
            _lanes.Clear();
        }
        open.ForEach(l => l.Close());
    }
}
