using System.Globalization;
using System.Text;
using Pollen.Node.Status;

namespace Pollen.Node.Dashboard;

/// <summary>
/// A node's status in the Prometheus text exposition format (version 0.0.4): one HELP and TYPE line per
/// metric family, label values escaped, every name prefixed <c>pollen_</c>.
/// </summary>
public static class PrometheusText
{
    /// <summary>The content type of the format.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Formats <paramref name="status"/>.</summary>
    public static string Format(NodeStatus status)
    {
        var w = new Writer();
        var node = $"peer_id=\"{Escape(status.Node.PeerId)}\",model_id=\"{Escape(status.Model.ModelId)}\"";
        w.Family("pollen_up", "gauge", "1 while the node runs.");
        w.Sample("pollen_up", node, 1);
        w.Family("pollen_uptime_seconds", "gauge", "Seconds since the node started.");
        w.Sample("pollen_uptime_seconds", node, Math.Max(0, (status.Time - status.Node.StartedAt).TotalSeconds));
        w.Family("pollen_model_blocks", "gauge", "Blocks of the model.");
        w.Sample("pollen_model_blocks", node, status.Model.NumBlocks);
        w.Family("pollen_peers", "gauge", "Peers known to serve blocks of the model.");
        w.Sample("pollen_peers", node, status.Peers.Count);
        w.Family("pollen_blocks_covered", "gauge", "Blocks served by at least one peer.");
        w.Sample("pollen_blocks_covered", node, Coverage.Covered(status));
        w.Family("pollen_peer_blocks", "gauge", "Blocks a peer serves, by peer.");
        foreach (var p in status.Peers)
        {
            w.Sample("pollen_peer_blocks", $"peer=\"{Escape(p.PeerId)}\",address=\"{Escape(p.Address)}\",start=\"{p.StartBlock}\",end=\"{p.EndBlock}\"", p.EndBlock - p.StartBlock);
        }
        w.Family("pollen_peer_throughput", "gauge", "Announced block-steps per second, by peer.");
        foreach (var p in status.Peers)
        {
            w.Sample("pollen_peer_throughput", $"peer=\"{Escape(p.PeerId)}\",address=\"{Escape(p.Address)}\"", p.Throughput);
        }
        if (status.Serving is { } serving)
        {
            w.Family("pollen_sessions_open", "gauge", "Inference sessions open on this node.");
            w.Sample("pollen_sessions_open", node, serving.OpenSessions);
            w.Family("pollen_tokens_served_total", "counter", "Tokens stepped through this node's blocks.");
            w.Sample("pollen_tokens_served_total", node, serving.TokensServed);
            w.Family("pollen_serving_tokens_per_second", "gauge", "Tokens per second through this node's blocks, recently.");
            w.Sample("pollen_serving_tokens_per_second", node, serving.TokensPerSecond);
            w.Family("pollen_cache_tokens_used", "gauge", "Cache tokens reserved by open sessions.");
            w.Sample("pollen_cache_tokens_used", node, serving.CacheTokensUsed);
            w.Family("pollen_cache_tokens", "gauge", "The cache budget in tokens.");
            w.Sample("pollen_cache_tokens", node, serving.CacheTokens);
            w.Family("pollen_served_round", "gauge", "Training round whose parameters are served.");
            w.Sample("pollen_served_round", node, serving.ServedRound);
        }
        if (status.Training is { } training)
        {
            w.Family("pollen_training_round", "gauge", "Training rounds finished by this node.");
            w.Sample("pollen_training_round", node, training.Round);
            w.Family("pollen_training_loss", "gauge", "Validation loss (nats/token) after the last round.");
            if (training.Losses.Count > 0)
            {
                w.Sample("pollen_training_loss", node, training.Losses[^1].Loss);
            }
            w.Family("pollen_training_tokens_per_second", "gauge", "Training tokens per second over the last round.");
            w.Sample("pollen_training_tokens_per_second", node, training.TokensPerSecond);
            w.Family("pollen_training_bytes_sent_total", "counter", "Bytes sent for averaging and state transfer.");
            w.Sample("pollen_training_bytes_sent_total", node, training.BytesSent);
            w.Family("pollen_training_bytes_received_total", "counter", "Bytes received for averaging and state transfer.");
            w.Sample("pollen_training_bytes_received_total", node, training.BytesReceived);
        }
        return w.ToString();
    }

    /// <summary>Escapes a label value: backslash, double quote and line feed.</summary>
    public static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal)
        .Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private sealed class Writer
    {
        private readonly StringBuilder _text = new();

        public void Family(string name, string type, string help) =>
            _text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
                .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

        public void Sample(string name, string labels, double value) =>
            _text.Append(name).Append('{').Append(labels).Append("} ")
                .Append(double.IsFinite(value) ? value.ToString("R", CultureInfo.InvariantCulture) : double.IsNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf")
                .Append('\n');

        public override string ToString() => _text.ToString();
    }
}

/// <summary>Which blocks the swarm's peers cover.</summary>
public static class Coverage
{
    /// <summary>Peers serving each block (index = block).</summary>
    public static int[] PerBlock(NodeStatus status)
    {
        var counts = new int[Math.Max(0, status.Model.NumBlocks)];
        foreach (var p in status.Peers)
        {
            for (var b = Math.Max(0, p.StartBlock); b < Math.Min(counts.Length, p.EndBlock); b++)
            {
                counts[b]++;
            }
        }
        return counts;
    }

    /// <summary>Blocks served by at least one peer.</summary>
    public static int Covered(NodeStatus status) => PerBlock(status).Count(c => c > 0);
}
