using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Pollen.Inference.Protos;

namespace Pollen.Inference.Server;

/// <summary>
/// The push lane: pushed steps as bare frames on a TCP connection of their own, next to the gRPC port. The
/// server sends one byte, <see cref="Accepted"/>, when it takes a connection (it closes one it cannot take);
/// the writer then sends the 8 bytes <see cref="Magic"/>, and frames: a 4-byte little-endian length, then a
/// <see cref="PushBatch"/> of that many bytes. Nothing else is ever sent back: what happens to a pushed step
/// is told to its client on the session's stream, exactly as for the <c>Push</c> call.
/// </summary>
/// <remarks>
/// A push through gRPC crosses several threads on each side — the HTTP/2 connection's writer, the socket's
/// event thread, Kestrel's connection loop, the handler's continuation — and on a loaded machine each one
/// that has gone to sleep costs tens of microseconds to wake, several times per message. On the lane the
/// tensor thread that made the output writes the frame itself (a send that completes at once unless the
/// socket's buffer is full; a client writes its quiet steps to the first server the same way, from its
/// decoding thread), and on the other side a thread of the connection's own, blocked in a read, checks the
/// frame and hands the steps to the tensor thread: one wake on the way instead of four or five. Measured
/// with a small model on 4 servers in one process, this took 0.36 ms off the 1.44 ms a token cost over
/// local decoding (docs/benchmarks.md).
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

    /// <summary><paramref name="message"/> as one frame (length prefix included), preceded by <see cref="Magic"/> when <paramref name="first"/>.</summary>
    internal static byte[] Frame(PushBatch message, bool first)
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
/// <see cref="BlockServer.StartPushed"/>, as the <c>Push</c> call does. Each connection has a thread of its own, blocked in its reads.
/// </summary>
internal sealed class PushLaneListener : IDisposable
{
    /// <summary>What a frame's body is first read into; it doubles as more arrives.</summary>
    private const int FirstChunk = 1 << 20;

    private readonly Socket _listener;
    private readonly Action<PushBatch, List<Task>> _start;
    private readonly int _maxFrameBytes;
    private readonly int _maxInFlight;
    private readonly ILogger _logger;
    private readonly HashSet<Connection> _connections = [];
    private readonly TimeSpan _evictIdle;
    private readonly Lock _lock = new();
    private bool _disposed;

    /// <summary>Listens on <paramref name="address"/>:<paramref name="port"/> (0: any free port) and starts accepting.</summary>
    /// <param name="address">Address to listen on.</param>
    /// <param name="port">Port (0: any free port).</param>
    /// <param name="start">Starts a message's steps and adds them to the list (<see cref="BlockServer.StartPushed"/>); throws <see cref="Grpc.Core.RpcException"/> for a message it does not take.</param>
    /// <param name="maxFrameBytes">Largest frame taken.</param>
    /// <param name="maxInFlight">Steps of one connection running at once before it waits for some.</param>
    /// <param name="logger">Where closed connections are told.</param>
    /// <param name="evictIdle">With all connections taken, one that carried nothing for longer than this makes way (default <see cref="PushLane.WriterIdleLimit"/>).</param>
    internal PushLaneListener(IPAddress address, int port, Action<PushBatch, List<Task>> start, int maxFrameBytes, int maxInFlight, ILogger logger, TimeSpan? evictIdle = null)
    {
        _start = start;
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
            Socket connection;
            try
            {
                connection = _listener.Accept();
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
            var taken = new Connection(connection);
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
                Closed(Describe(evicted.Socket), "idle while another connection waited for its place");
                Cut(evicted.Socket);
            }
            if (!room)
            {
                Closed(Describe(connection), $"more than {PushLane.MaxConnections} connections");
                connection.Dispose();
                continue;
            }
            new Thread(() => Serve(taken), 256 << 10) { IsBackground = true, Name = "pollen-push-lane" }.Start();
        }
    }

    /// <summary>Reads frames until the connection ends or sends something malformed, then closes it.</summary>
    private void Serve(Connection taken)
    {
        var connection = taken.Socket;
        var remote = Describe(connection);
        var running = new List<Task>();
        try
        {
            connection.NoDelay = true;
            connection.ReceiveTimeout = (int)PushLane.IdleTimeout.TotalMilliseconds;
            connection.Send([PushLane.Accepted]);
            var header = new byte[PushLane.Magic.Length];
            if (!ReadExactly(connection, header))
            {
                return;
            }
            if (!header.AsSpan().SequenceEqual(PushLane.Magic))
            {
                Closed(remote, "it did not start with the push-lane magic bytes");
                return;
            }
            while (ReadExactly(connection, header.AsSpan(0, 4)))
            {
                var length = BinaryPrimitives.ReadInt32LittleEndian(header);
                if (length <= 0 || length > _maxFrameBytes)
                {
                    Closed(remote, $"a frame of {length} bytes (1..{_maxFrameBytes} allowed)");
                    return;
                }
                var body = ReadBody(connection, length);
                if (body is null)
                {
                    Closed(remote, "the connection ended inside a frame");
                    return;
                }
                PushBatch batch;
                try
                {
                    batch = PushBatch.Parser.ParseFrom(body);
                }
                catch (InvalidProtocolBufferException e)
                {
                    Closed(remote, $"a frame that is not a push batch ({e.Message})");
                    return;
                }
                try
                {
                    _start(batch, running); // returns at once: each step waits for its turn and its output on its own
                }
                catch (Grpc.Core.RpcException e)
                {
                    Closed(remote, e.Status.Detail);
                    return;
                }
                taken.LastFrame = Environment.TickCount64;
                while (running.Count > _maxInFlight)
                {
                    running.RemoveAt(Task.WaitAny([.. running]));
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            // cut, idle too long, or the listener is closing
        }
        catch (Exception e)
        {
            // a thread of its own: whatever went wrong ends this connection, never the server
            Log.UnexpectedError(_logger, e);
        }
        finally
        {
            lock (_lock)
            {
                _connections.Remove(taken);
            }
            connection.Dispose();
        }
    }

    /// <summary>Ends a connection at once; its reading thread sees it and finishes.</summary>
    private static void Cut(Socket connection)
    {
        try
        {
            connection.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        connection.Dispose();
    }

    /// <summary>An open connection and when it last carried a frame (<see cref="Environment.TickCount64"/>; its accept time before the first).</summary>
    private sealed class Connection(Socket socket)
    {
        internal Socket Socket { get; } = socket;

        internal long LastFrame { get; set; } = Environment.TickCount64;
    }

    private void Closed(string remote, string reason) => Log.PushLaneClosed(_logger, remote, reason);

    /// <summary>
    /// The next <paramref name="length"/> bytes, or null if the connection ends first. Memory grows with what
    /// arrives, not with what the length claims: a peer announcing the largest frame and sending nothing
    /// holds <see cref="FirstChunk"/> bytes, not 64 MiB.
    /// </summary>
    private static byte[]? ReadBody(Socket connection, int length)
    {
        var body = new byte[Math.Min(length, FirstChunk)];
        var read = 0;
        while (true)
        {
            while (read < body.Length)
            {
                var got = connection.Receive(body.AsSpan(read));
                if (got == 0)
                {
                    return null;
                }
                read += got;
            }
            if (read == length)
            {
                return body;
            }
            Array.Resize(ref body, (int)Math.Min(length, 2L * body.Length));
        }
    }

    /// <summary>Fills <paramref name="buffer"/>; false if the connection ended cleanly before its first byte.</summary>
    private static bool ReadExactly(Socket connection, Span<byte> buffer)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var got = connection.Receive(buffer[read..]);
            if (got == 0)
            {
                if (read == 0)
                {
                    return false;
                }
                throw new IOException("the connection ended inside a frame");
            }
            read += got;
        }
        return true;
    }

    private static string Describe(Socket connection)
    {
        try
        {
            return connection.RemoteEndPoint?.ToString() ?? "?";
        }
        catch (SocketException)
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
        _listener.Dispose();
        open.ForEach(c => Cut(c.Socket));
    }
}
