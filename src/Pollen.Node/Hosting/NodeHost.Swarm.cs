using Pollen.Swarm;

namespace Pollen.Node.Hosting;

public sealed partial class NodeHost
{
    /// <summary>Join attempts before giving up on the initial peers.</summary>
    public const int JoinAttempts = 3;

    /// <summary>Wait before the second attempt; doubled before each further one.</summary>
    public static readonly TimeSpan JoinBackoff = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Binds the swarm port and joins through the initial peers, retrying a few times with backoff: a
    /// peer that is restarting gets a few seconds, a wrong address fails in about as long with a message
    /// naming it. Each attempt is bounded by the DHT's connect timeout and RPC deadline.
    /// </summary>
    private async Task<SwarmNode> JoinAsync(SwarmServices? services, TextWriter progress, CancellationToken cancellationToken)
    {
        var delay = JoinBackoff;
        for (var attempt = 1; ; attempt++)
        {
            var options = new SwarmOptions
            {
                Home = _options.Home,
                Port = _options.Port,
                ListenAddress = _options.Listen,
                AnnounceAddress = _options.AnnounceAddress,
                ConnectTimeout = TimeSpan.FromSeconds(2),
            };
            foreach (var peer in _options.InitialPeers)
            {
                options.InitialPeers.Add(peer);
            }
            try
            {
                return await SwarmNode.StartAsync(options, _identity, _time, _logging, services, cancellationToken).ConfigureAwait(false);
            }
            catch (SwarmUnavailableException e) when (attempt < JoinAttempts)
            {
                Log.JoinRetry(_logger, attempt, JoinAttempts, delay);
                await progress.WriteLineAsync($"joining: {e.Message} (attempt {attempt} of {JoinAttempts}); retrying in {delay.TotalSeconds:0.#} s").ConfigureAwait(false);
                await progress.FlushAsync(cancellationToken).ConfigureAwait(false);
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
                delay *= 2;
            }
            catch (SwarmUnavailableException e)
            {
                throw new SwarmUnavailableException($"could not join the swarm after {JoinAttempts} attempts: {e.Message}");
            }
        }
    }
}
