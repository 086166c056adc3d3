using Pollen.Model.Config;
using Pollen.Model.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Model.Layers;

/// <summary>
/// Self-attention of one block: given hidden states (B, T, C), their positions (B, T) and optionally
/// the block's cache, returns (B, T, C). Causality is by position (a query sees keys at positions ≤
/// its own), so a cached step, a replay and a full forward agree.
/// </summary>
public abstract class AttentionBase : nn.Module
{
    private readonly float[]? _alibiSlopes;

    /// <summary>Creates the shared parts for <paramref name="config"/>.</summary>
    protected AttentionBase(string name, ModelConfig config, int ropeDim) : base(name)
    {
        Config = config;
        if (config.PositionEncoding == PositionEncoding.Rope)
        {
            Rope = RotaryEmbedding.Shared(ropeDim, config.RopeTheta, config.RopeScaling);
        }
        else
        {
            _alibiSlopes = Alibi.Slopes(config.NumAttentionHeads);
        }
    }

    /// <summary>The model's shape.</summary>
    protected ModelConfig Config { get; }

    /// <summary>The rotation, or null with ALiBi.</summary>
    protected RotaryEmbedding? Rope { get; }

    /// <summary>Runs attention; see the class summary.</summary>
    public Tensor Forward(Tensor x, Tensor positions, LayerKvCache? cache)
    {
        var (q, k, v) = Project(x, positions);
        var keyPositions = positions;
        if (cache is not null)
        {
            (k, v, keyPositions) = cache.Append(k, v, positions); // (B, Hkv, S, ·)
        }
        var mask = Mask(positions, keyPositions, cache is not null, out var isCausal);
        return Output(AttendAll(q, k, v, mask, isCausal)); // (B, T, C)
    }

    /// <summary>
    /// Runs one step for N independent sessions at once: row i of <paramref name="x"/> (N, T, C) and
    /// <paramref name="positions"/> (N, T) belongs to the session whose cache is <paramref name="caches"/>[i].
    /// Projections (most of the work) run batched; attention runs per session over its own cache, so
    /// sessions of different lengths share a forward. Equal to N separate <see cref="Forward"/> calls.
    /// One-token steps of caches that share a buffer (<see cref="KvCache.Share"/>) append and attend
    /// with one call for all rows, the padding of shorter rows masked.
    /// </summary>
    public Tensor ForwardSessions(Tensor x, Tensor positions, IReadOnlyList<LayerKvCache> caches)
    {
        if (caches.Count != x.shape[0])
        {
            throw new ArgumentException($"{caches.Count} caches for a batch of {x.shape[0]} sessions", nameof(caches));
        }
        var (q, k, v) = Project(x, positions);
        if (x.shape[1] == 1 && SharedLayerKv.Covering(caches) is { } shared && shared.Append(k, v, positions) is var (keys, values, sharedPositions, filled))
        {
            var mask = Mask(positions, sharedPositions, cached: true, out var isCausal);
            if (filled is not null)
            {
                var pad = filled.unsqueeze(1).unsqueeze(1); // (N, 1, 1, S)
                mask = mask is null ? pad
                    : mask.dtype == ScalarType.Bool ? mask.logical_and(pad)
                    : mask.masked_fill(pad.logical_not(), TensorMath.NegativeInfinity);
            }
            return Output(AttendAll(q, keys, values, mask, isCausal)); // (N, 1, C)
        }
        // one call each for the N rows (per-op overhead, not arithmetic, is what a step of N sessions pays for)
        var (qs, ks, vs, ps) = (q.split(1), k.split(1), v.split(1), positions.split(1));
        var rows = new Tensor[caches.Count];
        for (var i = 0; i < rows.Length; i++)
        {
            var (ki, vi, keyPositions) = caches[i].Append(ks[i], vs[i], ps[i]);
            var mask = Mask(ps[i], keyPositions, cached: true, out var isCausal);
            rows[i] = AttendAll(qs[i], ki, vi, mask, isCausal); // (1, Hq, T, D)
        }
        return Output(cat(rows, 0)); // (N, T, C)
    }

    /// <summary>
    /// Attention of queries (B, Hq, T, ·) over keys (B, Hkv, S, ·) and values (B, Hkv, S, D) → (B, Hq, T, D).
    /// A single query that sees every key (a cached decoding step; with shared caches, every key that is
    /// filled, the same for all heads) folds each group of query heads into the query length,
    /// (B, Hkv, G, ·), instead of repeating keys and values G times: the same dot products without
    /// copying the cache on every step.
    /// </summary>
    private Tensor AttendAll(Tensor q, Tensor k, Tensor v, Tensor? mask, bool isCausal)
    {
        var groups = Config.KvGroups;
        if (groups == 1)
        {
            return Attend(q, k, v, mask, isCausal);
        }
        var sameForAllHeads = mask is null || (mask.dtype == ScalarType.Bool && mask.shape[1] == 1 && mask.shape[2] == 1);
        if (sameForAllHeads && !isCausal && q.shape[2] == 1)
        {
            long b = q.shape[0], hkv = k.shape[1];
            var folded = Attend(q.reshape(b, hkv, groups, q.shape[3]), k, v, mask, false); // (B, Hkv, G, D)
            return folded.reshape(b, hkv * groups, 1, folded.shape[3]); // (B, Hq, 1, D)
        }
        return Attend(q, RepeatKv(k), RepeatKv(v), mask, isCausal);
    }

    /// <summary>Queries (B, Hq, T, ·), keys (B, Hkv, T, ·) and values (B, Hkv, T, D), positions applied.</summary>
    protected abstract (Tensor Q, Tensor K, Tensor V) Project(Tensor x, Tensor positions);

    /// <summary>Attention of queries over (already repeated) keys and values → (B, Hq, T, D).</summary>
    protected abstract Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, bool isCausal);

    /// <summary>Heads (B, Hq, T, D) → output projection (B, T, C).</summary>
    protected abstract Tensor Output(Tensor heads);

    /// <summary>
    /// The attention mask for queries at <paramref name="queryPositions"/> (B, T) over keys at
    /// <paramref name="keyPositions"/> (B, S): null when plain causal order suffices (then
    /// <paramref name="isCausal"/> says whether SDPA must apply it), else a bool mask or, with ALiBi, a float
    /// bias (B, H, T, S) with −∞ on masked entries.
    /// </summary>
    protected Tensor? Mask(Tensor queryPositions, Tensor keyPositions, bool cached, out bool isCausal)
    {
        var t = queryPositions.shape[1];
        isCausal = false;
        if (_alibiSlopes is null)
        {
            if (!cached)
            {
                isCausal = t > 1;
                return null;
            }
            if (t == 1)
            {
                return null; // a single new token sees every cached key
            }
        }
        var allowed = (keyPositions.unsqueeze(1) <= queryPositions.unsqueeze(2)).unsqueeze(1); // (B, 1, T, S)
        if (_alibiSlopes is null)
        {
            return allowed;
        }
        var bias = Alibi.Bias(tensor(_alibiSlopes), queryPositions, keyPositions); // (B, H, T, S)
        return bias.masked_fill(allowed.logical_not(), TensorMath.NegativeInfinity);
    }

    /// <summary>Repeats each key/value head for the query heads of its group (B, Hkv, S, D) → (B, Hq, S, D).</summary>
    protected Tensor RepeatKv(Tensor x) =>
        Config.KvGroups == 1 ? x : x.repeat_interleave(Config.KvGroups, dim: 1);

    /// <summary>Scaled dot-product attention.</summary>
    protected static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor? mask, bool isCausal) =>
        nn.functional.scaled_dot_product_attention(q, k, v, mask, 0.0, isCausal);

    /// <summary>Creates the attention <paramref name="config"/> asks for.</summary>
    public static AttentionBase Create(ModelConfig config, int layerIndex) => config.Attention switch
    {
        AttentionKind.Standard => new Attention(config),
        AttentionKind.Differential => new DifferentialAttention(config, layerIndex),
        _ => throw new ArgumentOutOfRangeException(nameof(config), config.Attention, "unknown attention kind"),
    };
}
