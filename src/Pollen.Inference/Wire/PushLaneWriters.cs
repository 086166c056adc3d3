using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Pollen.Inference.Protos;
using Pollen.Inference.Server;

namespace Pollen.Inference.Wire;

/// <summary>Could not connect to a server's push lane; nothing was sent, so the push may go another way.</summary>
internal sealed class PushLaneUnreachableException(string message, Exception inner) : IOException(message, inner);

/// <summary>
/// A connection to the push lane of one server, shared by all sessions whose steps go there from this
/// process. Writes take turns and are made by the thread that has the step (a server's tensor thread, a
/// client's decoding loop); a write that fails closes the connection and the next one reconnects (it is
/// never retried: the frame may have arrived).
/// </summary>
internal sealed class PushLaneWriter(string host, int port) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Socket? _socket;
    private NetworkStream? _stream;
    private long _lastWrite;
    private bool _closed;

    /// <summary>"host:port" of the lane.</summary>
    public string Address { get; } = Pollen.Swarm.Transport.PeerAddress.Format(host, port);

    /// <summary>When it was last handed out, in <see cref="Environment.TickCount64"/> milliseconds; under the pool's lock.</summary>
    internal long LastUsed { get; set; }

    /// <summary>
    /// Writes <paramref name="message"/>, connecting first if needed, within <paramref name="timeout"/>.
    /// Throws <see cref="PushLaneUnreachableException"/> when it could not connect (nothing was sent).
    /// </summary>
    public async Task WriteAsync(PushBatch message, TimeSpan timeout)
    {
        if (!_gate.Wait(0) && !await _gate.WaitAsync(timeout).ConfigureAwait(false))
        {
            throw new TimeoutException($"the push lane to {Address} stayed busy for {timeout}");
        }
        try
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            var first = false;
            if (_stream is null || Stale())
            {
                Drop();
                await ConnectAsync(timeout).ConfigureAwait(false);
                first = true;
            }
            var frame = PushLane.Frame(message, first);
            var write = _stream!.WriteAsync(frame);
            if (write.IsCompletedSuccessfully)
            {
                write.GetAwaiter().GetResult(); // the usual case: the socket took it at once, on this thread
            }
            else
            {
                await write.AsTask().WaitAsync(timeout).ConfigureAwait(false);
            }
            _lastWrite = Environment.TickCount64;
        }
        catch (Exception e) when (e is not PushLaneUnreachableException)
        {
            Drop();
            throw;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Whether the connection is unusable: the other side closed it (the lane never sends, so readable means closed) or it sat idle long enough to be closed soon.</summary>
    private bool Stale()
    {
        try
        {
            return Environment.TickCount64 - _lastWrite > PushLane.WriterIdleLimit.TotalMilliseconds || _socket!.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return true;
        }
    }

    private async Task ConnectAsync(TimeSpan timeout)
    {
        var socket = await ConnectAsync(host, port, timeout).ConfigureAwait(false);
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>
    /// A connection to the lane at <paramref name="host"/>:<paramref name="port"/> that the server took (it sent
    /// <see cref="PushLane.Accepted"/>); throws <see cref="PushLaneUnreachableException"/> otherwise.
    /// </summary>
    internal static async Task<Socket> ConnectAsync(string host, int port, TimeSpan timeout)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var cancel = new CancellationTokenSource(timeout < PushLane.ConnectTimeout ? timeout : PushLane.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(host, port, cancel.Token).ConfigureAwait(false);
            // the server says it took the connection (it closes one it has no room for)
            var accepted = new byte[1];
            if (await socket.ReceiveAsync(accepted, cancel.Token).ConfigureAwait(false) != 1 || accepted[0] != PushLane.Accepted)
            {
                throw new SocketException((int)SocketError.ConnectionRefused, "the server has no room for another push-lane connection");
            }
            return socket;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            throw new PushLaneUnreachableException($"could not connect to the push lane at {Pollen.Swarm.Transport.PeerAddress.Format(host, port)}: {e.Message}", e);
        }
    }

    private void Drop()
    {
        _stream?.Dispose();
        _socket?.Dispose();
        (_stream, _socket) = (null, null);
    }

    /// <summary>Closes it in the background once no write is under way; later writes fail.</summary>
    public void Dispose() => _ = CloseWhenIdleAsync();

    private async Task CloseWhenIdleAsync()
    {
        try
        {
            await _gate.WaitAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return; // closed already
        }
        _closed = true;
        Drop();
        _gate.Release();
        _gate.Dispose(); // a write that comes later fails at once
    }
}

/// <summary>
/// This process's connections to other servers' push lanes, one per lane, created on first use; at most
/// <see cref="MaxWriters"/>, the least recently used closed beyond that. A lane that could not be reached is
/// not tried again for <see cref="PushLane.UnreachableFor"/>: its pushes take the gRPC path meanwhile.
/// </summary>
internal sealed class PushLaneWriters : IDisposable
{
    /// <summary>Most lanes kept connected.</summary>
    internal const int MaxWriters = 64;

    private readonly Dictionary<(string Address, uint Port), PushLaneWriter> _writers = [];
    private readonly Dictionary<(string Address, uint Port), long> _unreachable = []; // → until, TickCount64
    private readonly Lock _lock = new();
    private bool _disposed;

    /// <summary>
    /// The connection to the lane on <paramref name="port"/> of the server at <paramref name="address"/> (its
    /// gRPC host:port), or null when it has none (port 0) or could not be reached lately.
    /// </summary>
    internal PushLaneWriter? For(string address, uint port)
    {
        if (port is 0 or > ushort.MaxValue)
        {
            return null;
        }
        PushLaneWriter? evicted = null;
        PushLaneWriter writer;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_unreachable.TryGetValue((address, port), out var until))
            {
                if (Environment.TickCount64 < until)
                {
                    return null;
                }
                _unreachable.Remove((address, port));
            }
            if (!_writers.TryGetValue((address, port), out writer!))
            {
                if (_writers.Count >= MaxWriters)
                {
                    var oldest = _writers.MinBy(w => w.Value.LastUsed);
                    _writers.Remove(oldest.Key);
                    evicted = oldest.Value;
                }
                writer = _writers[(address, port)] = new PushLaneWriter(Pollen.Swarm.Transport.PeerAddress.Host(address), (int)port);
            }
            writer.LastUsed = Environment.TickCount64;
        }
        evicted?.Dispose();
        return writer;
    }

    /// <summary>
    /// Writes <paramref name="message"/> on the push lane of the server at <paramref name="address"/>, if it has
    /// one (<paramref name="port"/>) that can be reached; false when the message is to go another way (nothing
    /// was sent). Throws if the write itself failed: the frame may have arrived.
    /// </summary>
    internal async Task<bool> TryWriteAsync(string address, uint port, PushBatch message, TimeSpan timeout, ILogger logger)
    {
        if (For(address, port) is not { } lane)
        {
            return false;
        }
        try
        {
            await lane.WriteAsync(message, timeout).ConfigureAwait(false);
            return true;
        }
        catch (PushLaneUnreachableException e)
        {
            MarkUnreachable(address, port);
            Log.PushLaneUnreachable(logger, lane.Address, e.InnerException?.Message ?? e.Message, PushLane.UnreachableFor);
            return false;
        }
    }

    /// <summary>Skips the lane for <see cref="PushLane.UnreachableFor"/> after a failed connect.</summary>
    private void MarkUnreachable(string address, uint port)
    {
        PushLaneWriter? writer;
        lock (_lock)
        {
            _unreachable[(address, port)] = Environment.TickCount64 + (long)PushLane.UnreachableFor.TotalMilliseconds;
            _writers.Remove((address, port), out writer);
        }
        writer?.Dispose();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        List<PushLaneWriter> open;
        lock (_lock)
        {
            _disposed = true;
            open = [.. _writers.Values];
            _writers.Clear();
        }
        open.ForEach(w => w.Dispose());
    }
}
