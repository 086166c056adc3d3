using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Pollen.Inference.Protos;
using Pollen.Model.Runtime;

namespace Pollen.Inference.Server;

/// <summary>
/// The push lane: pushed steps as bare frames on a TCP connection of their own, next to the gRPC port. The
/// server sends one byte, <see cref="Accepted"/>, when it takes a connection (it closes one it cannot take);
/// the writer then sends the 8 bytes <see cref="Magic"/>, and frames: a 4-byte little-endian length, then a
/// <see cref="PushBatch"/> of that many bytes. What happens to a pushed step is told to its client on the
/// session's stream, exactly as for the <c>Push</c> call; the only frames sent back are <see cref="LaneAnswer"/>s,
/// on a client's own connection, for the sessions it asked for (<c>PushBatch.listen</c>).
/// </summary>
/// <remarks>
/// A push through gRPC crosses several threads on each side — the HTTP/2 connection's writer, the socket's
/// event thread, Kestrel's connection loop, the handler's continuation — and on a loaded machine each one
/// that has gone to sleep costs tens of microseconds to wake, several times per message. On the lane the
/// tensor thread that made the output writes the frame itself (a send that completes at once unless the
/// socket's buffer is full; a client writes its quiet steps to the first server the same way, from its
/// decoding thread), and on the other side the tensor thread itself reads it when it has nothing to compute
/// (<see cref="Pollen.Model.Runtime.TensorThread.Watch"/>), checks the frame and runs the step: one wake on
/// the way instead of four or five, and none between two servers of one process. Measured with a small
/// model on 4 servers in one process, lanes read by a thread of each connection's own took 0.36 ms off the
/// 1.44 ms a token cost over local decoding; reading them on the tensor thread took off a further wake per
/// hop (docs/benchmarks.md).
/// A server takes at most <see cref="MaxConnections"/> connections (one per previous server is the normal
/// case); when it has that many, a new one replaces the one that has carried nothing for longest if that is
/// longer than <see cref="WriterIdleLimit"/> (after which its writer would reconnect anyway), else it is
/// closed, and its writer pushes through gRPC. Frames are capped like gRPC messages, and a connection that
/// sends anything malformed is closed.
/// </remarks>
internal static class PushLane
{
    /// <summary>The first bytes a writer sends: the protocol and its version.</summary>
    internal static ReadOnlySpan<byte> Magic => "POLLENP1"u8;

    /// <summary>The byte a server sends when it takes a connection.</summary>
    internal const byte Accepted = 1;

    /// <summary>Most connections a server keeps open; more are closed as they arrive.</summary>
    internal const int MaxConnections = 64;

    /// <summary>A connection that carries nothing for this long is closed (the writer reconnects when it next pushes).</summary>
    internal static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(10);

    /// <summary>A writer that has not pushed for this long reconnects first, well before the other side closes it as idle.</summary>
    internal static readonly TimeSpan WriterIdleLimit = TimeSpan.FromMinutes(1);

    /// <summary>How long a writer waits to connect; a lane that cannot be reached is skipped for <see cref="UnreachableFor"/>.</summary>
    internal static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(1);

    /// <summary>How long the pushes to a server whose lane could not be reached go through gRPC instead.</summary>
    internal static readonly TimeSpan UnreachableFor = TimeSpan.FromMinutes(10);

    /// <summary>Most frames read from one connection before the tensor thread turns to the others (and to its queued work).</summary>
    internal const int FramesPerTurn = 64;

    /// <summary><paramref name="message"/> as one frame (length prefix included), preceded by <see cref="Magic"/> when <paramref name="first"/>.</summary>
    internal static byte[] Frame(IMessage message, bool first)
    {
        var size = message.CalculateSize();
        var offset = first ? Magic.Length : 0;
        var frame = new byte[offset + 4 + size];
        if (first)
        {
            Magic.CopyTo(frame);
        }
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(offset), size);
        message.WriteTo(frame.AsSpan(offset + 4));
        return frame;
    }
}

/// <summary>
/// Accepts push-lane connections on one port and starts the steps they carry through
/// <see cref="BlockServer.StartPushed"/>, as the <c>Push</c> call does. The connections are read by the
/// process's tensor thread (<see cref="TensorThread.Watch"/>), without blocking: it reads whatever has arrived
/// when it has nothing to compute, and a step whose frame is complete starts at once, on the thread that
/// computes it.
/// </summary>
internal sealed class PushLaneListener : IDisposable
{
    /// <summary>What a frame's body is first read into; it doubles as more arrives.</summary>
    private const int FirstChunk = 1 << 20;

    private readonly Socket _listener;
    private readonly Action<PushBatch, List<Task>> _start;
    private readonly Action<ListenRequest, IAnswerLane>? _listen;
    private readonly int _maxFrameBytes;
    private readonly int _maxInFlight;
    private readonly ILogger _logger;
    private readonly HashSet<Connection> _connections = [];
    private readonly TimeSpan _evictIdle;
    private readonly Lock _lock = new();
    private readonly Timer _idleSweep;
    private bool _disposed;

    /// <summary>Listens on <paramref name="address"/>:<paramref name="port"/> (0: any free port) and starts accepting.</summary>
    /// <param name="address">Address to listen on.</param>
    /// <param name="port">Port (0: any free port).</param>
    /// <param name="start">Starts a message's steps and adds them to the list (<see cref="BlockServer.StartPushed"/>); throws <see cref="Grpc.Core.RpcException"/> for a message it does not take.</param>
    /// <param name="maxFrameBytes">Largest frame taken.</param>
    /// <param name="maxInFlight">Steps of one connection running at once before it is read again.</param>
    /// <param name="logger">Where closed connections are told.</param>
    /// <param name="evictIdle">With all connections taken, one that carried nothing for longer than this makes way (default <see cref="PushLane.WriterIdleLimit"/>).</param>
    /// <param name="listen">Has a session's answers sent back on a connection (<see cref="BlockServer.ListenOnLane"/>); null: <c>listen</c> requests are ignored.</param>
    internal PushLaneListener(IPAddress address, int port, Action<PushBatch, List<Task>> start, int maxFrameBytes, int maxInFlight, ILogger logger, TimeSpan? evictIdle = null,
        Action<ListenRequest, IAnswerLane>? listen = null)
    {
        _start = start;
        _listen = listen;
        _evictIdle = evictIdle ?? PushLane.WriterIdleLimit;
        _maxFrameBytes = maxFrameBytes;
        _maxInFlight = maxInFlight;
        _logger = logger;
        _listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.Bind(new IPEndPoint(address, port));
            _listener.Listen(PushLane.MaxConnections);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        var sweep = PushLane.IdleTimeout / 8;
        _idleSweep = new Timer(_ => CloseIdle(), null, sweep, sweep);
        new Thread(Accept) { IsBackground = true, Name = "pollen-push-accept" }.Start();
    }

    /// <summary>The port listened on.</summary>
    internal int Port { get; }

    /// <summary>Connections open now.</summary>
    internal int Connections
    {
        get
        {
            lock (_lock)
            {
                return _connections.Count;
            }
        }
    }

    private void Accept()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                lock (_lock)
                {
                    if (_disposed)
                    {
                        return;
                    }
                }
                // out of file descriptors, or a connection reset before it was taken: back off, go on
                Log.UnexpectedError(_logger, e);
                Thread.Sleep(100);
                continue;
            }
            var taken = new Connection(this, socket, _maxFrameBytes);
            Connection? evicted = null;
            bool room;
            lock (_lock)
            {
                if (_connections.Count >= PushLane.MaxConnections
                    && _connections.MinBy(c => c.LastFrame) is { } idlest && Environment.TickCount64 - idlest.LastFrame >= _evictIdle.TotalMilliseconds)
                {
                    _connections.Remove(idlest);
                    evicted = idlest;
                }
                room = !_disposed && _connections.Count < PushLane.MaxConnections && _connections.Add(taken);
            }
            if (evicted is not null)
            {
                Cut(evicted, "idle while another connection waited for its place");
            }
            if (!room)
            {
                Closed(taken.Remote, $"more than {PushLane.MaxConnections} connections");
                socket.Dispose();
                continue;
            }
            // watched before the peer hears it is accepted, so that a request it sends at once (for its answers,
            // say) is not left unread while the steps it sends afterwards to this process's other lanes run
            _ = Watch(taken);
            try
            {
                socket.NoDelay = true;
                socket.Send([PushLane.Accepted]);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                Cut(taken, null); // gone already
            }
        }
    }

    /// <summary>
    /// On the tensor thread: reads what has arrived (up to <see cref="PushLane.FramesPerTurn"/> frames) and starts the
    /// steps of each complete frame; closes the connection when it ends or sends something malformed.
    /// </summary>
    private void Read(Connection c)
    {
        try
        {
            for (var frames = 0; frames < PushLane.FramesPerTurn && !c.Closed && !c.Paused; frames++)
            {
                switch (c.Frames.Receive(c.Socket, out var body, out var fault))
                {
                    case LaneRead.Nothing:
                        return;
                    case LaneRead.Frame:
                        Started(c, body!);
                        break;
                    default:
                        Close(c, fault); // a reason only when it was the peer's fault
                        return;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Close(c, null);
        }
        catch (Exception e)
        {
            // whatever went wrong ends this connection, never the server
            Log.UnexpectedError(_logger, e);
            Close(c, null);
        }
    }

    /// <summary>Starts the steps of a frame's <paramref name="body"/>; while too many of the connection's steps run, stops reading it.</summary>
    private void Started(Connection c, byte[] body)
    {
        PushBatch batch;
        try
        {
            batch = PushBatch.Parser.ParseFrom(body);
        }
        catch (InvalidProtocolBufferException e)
        {
            Close(c, $"a frame that is not a push batch ({e.Message})");
            return;
        }
        if (batch.Listen.Count > BlockServer.MaxPushBatch)
        {
            Close(c, $"a push message may ask for the answers of at most {BlockServer.MaxPushBatch} sessions, got {batch.Listen.Count}");
            return;
        }
        foreach (var listen in batch.Listen)
        {
            _listen?.Invoke(listen, c);
        }
        if (batch.Listen.Count > 0 && batch.Steps.Count == 0)
        {
            c.LastFrame = Environment.TickCount64;
            return; // a client asking for answers, no steps
        }
        try
        {
            _start(batch, c.Running); // each step waits for its turn and its output on its own (a step run at once has run already)
        }
        catch (Grpc.Core.RpcException e)
        {
            Close(c, e.Status.Detail);
            return;
        }
        c.LastFrame = Environment.TickCount64;
        c.Running.RemoveAll(t => t.IsCompleted);
        if (c.Running.Count > _maxInFlight)
        {
            // read again once one of them has finished
            c.Paused = true;
            TensorThread.Unwatch(c.Socket);
            _ = Task.WhenAny(c.Running).ContinueWith(_ => Watch(c), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }

    /// <summary>Has the tensor thread read <paramref name="c"/> (again), unless it was closed meanwhile (checked there, where it is closed).</summary>
    private Task<bool> Watch(Connection c) => TensorThread.InvokeAsync(() =>
    {
        c.Paused = false;
        if (!c.Closed)
        {
            TensorThread.Watch(c.Socket, () => Read(c));
        }
        return true;
    });

    /// <summary>On the tensor thread: closes the connection (once), saying why when it was the peer's fault.</summary>
    private void Close(Connection c, string? reason)
    {
        if (c.Closed)
        {
            return;
        }
        c.Closed = true;
        if (reason is not null)
        {
            Closed(c.Remote, reason);
        }
        TensorThread.Unwatch(c.Socket);
        c.Socket.Dispose();
        lock (_lock)
        {
            _connections.Remove(c);
        }
    }

    /// <summary>From any thread: ends a connection at once (its writer sees it closed), and closes it on the tensor thread.</summary>
    private void Cut(Connection c, string? reason)
    {
        try
        {
            c.Socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        _ = TensorThread.InvokeAsync(() =>
        {
            Close(c, reason);
            return true;
        });
    }

    /// <summary>Closes the connections that carried nothing for <see cref="PushLane.IdleTimeout"/>.</summary>
    private void CloseIdle()
    {
        List<Connection> idle;
        lock (_lock)
        {
            idle = [.. _connections.Where(c => Environment.TickCount64 - c.LastFrame > PushLane.IdleTimeout.TotalMilliseconds)];
        }
        idle.ForEach(c => Cut(c, null));
    }

    /// <summary>
    /// An open connection, read a piece at a time (<see cref="Frames"/>); the answers of sessions whose client
    /// listens on it are written back on it. Touched on the tensor thread only, but for <see cref="LastFrame"/>
    /// and <see cref="TrySend"/>.
    /// </summary>
    private sealed class Connection(PushLaneListener listener, Socket socket, int maxFrameBytes) : IAnswerLane
    {
        private readonly Lock _write = new();

        internal Socket Socket { get; } = socket;

        internal string Remote { get; } = Describe(socket);

        internal LaneFrameReader Frames { get; } = new(expectMagic: true, maxFrameBytes, FirstChunk);

        /// <summary>When it last carried a frame (<see cref="Environment.TickCount64"/>; its accept time before the first).</summary>
        internal long LastFrame
        {
            get => Interlocked.Read(ref field);
            set => Interlocked.Exchange(ref field, value);
        } = Environment.TickCount64;

        internal List<Task> Running { get; } = [];

        internal bool Closed
        {
            get => Volatile.Read(ref field);
            set => Volatile.Write(ref field, value);
        }

        internal bool Paused { get; set; }

        /// <summary>
        /// Writes <paramref name="answer"/> as one frame if the socket takes all of it at once; otherwise (closed,
        /// or a client that does not read) the connection is cut, since part of a frame may have gone.
        /// </summary>
        public bool TrySend(LaneAnswer answer)
        {
            var frame = PushLane.Frame(answer, first: false);
            lock (_write)
            {
                if (Closed)
                {
                    return false;
                }
                try
                {
                    if (Socket.Send(frame, SocketFlags.None, out var error) == frame.Length && error == SocketError.Success)
                    {
                        LastFrame = Environment.TickCount64; // in use, though its client writes only to listen
                        return true;
                    }
                }
                catch (ObjectDisposedException)
                {
                    return false;
                }
            }
            listener.Cut(this, "it did not take an answer at once (not reading?)");
            return false;
        }
    }

    private void Closed(string remote, string reason) => Log.PushLaneClosed(_logger, remote, reason);

    private static string Describe(Socket connection)
    {
        try
        {
            return connection.RemoteEndPoint?.ToString() ?? "?";
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return "?";
        }
    }

    /// <summary>Stops listening and cuts every connection (what a writer sees when the server dies).</summary>
    public void Dispose()
    {
        List<Connection> open;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            open = [.. _connections];
        }
        _idleSweep.Dispose();
        _listener.Dispose();
        open.ForEach(c => Cut(c, null));
    }
}

/// <summary>A connection a session's answers can be sent back on (a client's own push-lane connection).</summary>
internal interface IAnswerLane
{
    /// <summary>Sends <paramref name="answer"/>; false if it could not (then it is to go on the session's stream).</summary>
    bool TrySend(LaneAnswer answer);
}

/// <summary>
/// Reads push-lane frames from a non-blocking socket a piece at a time: optionally the magic bytes first, then
/// frames, each a 4-byte little-endian length and a body. Memory for a body grows with what arrives, not with
/// the length it claims: a peer announcing the largest frame and sending nothing holds the first chunk, not
/// 64 MiB.
/// </summary>
internal sealed class LaneFrameReader(bool expectMagic, int maxFrameBytes, int firstChunk)
{
    private readonly byte[] _header = new byte[PushLane.Magic.Length];
    private int _headerRead;
    private bool _started = !expectMagic; // the magic bytes have arrived
    private byte[]? _body;
    private int _length;
    private int _bodyRead;

    /// <summary>Whether some of the magic or of a frame (its length or body) has arrived but not all of it.</summary>
    private bool InsideFrame => _body is not null || _headerRead > 0;

    /// <summary>Where the next bytes go.</summary>
    private Span<byte> Wanted() =>
        !_started ? _header.AsSpan(_headerRead)
        : _body is null ? _header.AsSpan(_headerRead, 4 - _headerRead)
        : _body.AsSpan(_bodyRead);

    /// <summary>Counts <paramref name="got"/> bytes put where <see cref="Wanted"/> said; returns what is wrong with them, or null.</summary>
    private string? Advance(int got)
    {
        if (!_started)
        {
            _headerRead += got;
            if (_headerRead < _header.Length)
            {
                return null;
            }
            if (!_header.AsSpan().SequenceEqual(PushLane.Magic))
            {
                return "it did not start with the push-lane magic bytes";
            }
            (_started, _headerRead) = (true, 0);
            return null;
        }
        if (_body is null)
        {
            _headerRead += got;
            if (_headerRead < 4)
            {
                return null;
            }
            _headerRead = 0;
            _length = BinaryPrimitives.ReadInt32LittleEndian(_header);
            if (_length <= 0 || _length > maxFrameBytes)
            {
                return $"a frame of {_length} bytes (1..{maxFrameBytes} allowed)";
            }
            (_body, _bodyRead) = (new byte[Math.Min(_length, firstChunk)], 0);
            return null;
        }
        _bodyRead += got;
        if (_bodyRead == _body.Length && _bodyRead < _length)
        {
            Array.Resize(ref _body, (int)Math.Min(_length, 2L * _body.Length));
        }
        return null;
    }

    /// <summary>
    /// Reads from <paramref name="socket"/> (non-blocking) until a frame is whole (<paramref name="frame"/>),
    /// nothing more has arrived, the connection ended, or what came is malformed (<paramref name="fault"/> says
    /// what; for an end, set only if it came inside a frame).
    /// </summary>
    internal LaneRead Receive(Socket socket, out byte[]? frame, out string? fault)
    {
        (frame, fault) = (null, null);
        while (true)
        {
            var got = socket.Receive(Wanted(), SocketFlags.None, out var error);
            if (error == SocketError.WouldBlock)
            {
                return LaneRead.Nothing;
            }
            if (error != SocketError.Success || got == 0)
            {
                fault = error == SocketError.Success && InsideFrame ? "the connection ended inside a frame" : null;
                return LaneRead.Ended;
            }
            if (Advance(got) is { } wrong)
            {
                fault = wrong;
                return LaneRead.Malformed;
            }
            if (TakeFrame() is { } body)
            {
                frame = body;
                return LaneRead.Frame;
            }
        }
    }

    /// <summary>The body of the frame that has just arrived whole, or null.</summary>
    private byte[]? TakeFrame()
    {
        if (_body is null || _bodyRead < _length)
        {
            return null;
        }
        var body = _body;
        _body = null;
        return body;
    }
}

/// <summary>What <see cref="LaneFrameReader.Receive"/> found.</summary>
internal enum LaneRead
{
    /// <summary>Nothing more has arrived for now.</summary>
    Nothing,

    /// <summary>A whole frame.</summary>
    Frame,

    /// <summary>The connection ended or failed.</summary>
    Ended,

    /// <summary>Bytes that break the protocol.</summary>
    Malformed,
}
