using Pollen.Model.Config;
using Pollen.Model.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pollen.Model.Llama;

/// <summary>
/// A decoder-only transformer: token embedding → blocks → final RMSNorm → LM head. It is a
/// composition of three parts that run separately — <see cref="Embed"/>, <see cref="Blocks"/> and
/// <see cref="Head"/> — so a client can keep embedding and head and route hidden states through
/// blocks that live elsewhere. Parameter names follow Hugging Face Llama
/// (<c>model.embed_tokens.weight</c>, <c>model.layers.{i}.…</c>, <c>model.norm.weight</c>,
/// <c>lm_head.weight</c> unless tied).
/// </summary>
public sealed class Transformer : nn.Module, ICausalLM
{
    private readonly TransformerBody model;
    private readonly Linear? lm_head;
    private readonly Block[] _blocks;

    /// <summary>
    /// Creates a model; with <paramref name="initialize"/> its weights are drawn fresh (normal, std
    /// initializer_range, from torch's global generator), otherwise they are left for a checkpoint to fill.
    /// </summary>
    public Transformer(ModelConfig config, bool initialize = true) : base(nameof(Transformer))
    {
        config.Validate();
        Config = config;
        model = new TransformerBody(config);
        if (!config.TieWordEmbeddings)
        {
            lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        }
        _blocks = [.. model.layers];
        RegisterComponents();
        if (initialize)
        {
            Initialize();
        }
    }

    /// <inheritdoc/>
    public ModelConfig Config { get; }

    /// <summary>The dtype of the weights (float32 unless converted, e.g. by <c>ModelCheckpoint.Load</c>).</summary>
    public ScalarType Dtype => model.embed_tokens.weight!.dtype;

    /// <summary>The blocks, in order.</summary>
    public IReadOnlyList<Block> Blocks => _blocks;

    /// <summary>Token ids (B, T) → hidden states (B, T, C).</summary>
    public Tensor Embed(Tensor ids) => model.embed_tokens.forward(ids);

    /// <summary>Hidden states (B, T, C) → logits (B, T, V) in float32.</summary>
    public Tensor Head(Tensor hidden)
    {
        var h = model.norm.forward(hidden);
        var logits = lm_head is null ? h.matmul(model.embed_tokens.weight!.t()) : lm_head.forward(h);
        return logits.to(float32);
    }

    /// <summary>Runs every block in order.</summary>
    public Tensor RunBlocks(Tensor hidden, Tensor positions, KvCache? cache = null)
    {
        foreach (var block in _blocks)
        {
            hidden = block.forward(hidden, positions, cache);
        }
        return hidden;
    }

    /// <summary>Token ids (B, T) → logits (B, T, V). Positions default to 0..T-1 after the cache's tokens.</summary>
    public Tensor forward(Tensor ids, Tensor? positions = null, KvCache? cache = null)
    {
        positions ??= DefaultPositions(ids.shape[0], ids.shape[1], cache?.Length ?? 0);
        return Head(RunBlocks(Embed(ids), positions, cache));
    }

    /// <summary>Mean next-token cross-entropy (nats) of logits for <paramref name="ids"/> against <paramref name="targets"/> (B, T).</summary>
    public Tensor Loss(Tensor ids, Tensor targets)
    {
        var logits = forward(ids); // (B, T, V)
        return nn.functional.cross_entropy(logits.view(-1, Config.VocabSize), targets.view(-1));
    }

    /// <summary>Positions (B, T) counting from <paramref name="start"/>.</summary>
    public static Tensor DefaultPositions(long batch, long length, long start = 0) =>
        arange(start, start + length, dtype: int64).unsqueeze(0).expand(batch, length);

    /// <inheritdoc/>
    public IDecodingSession OpenSession(int maxLength) => new LocalDecodingSession(this, maxLength);

    private void Initialize()
    {
        using var noGrad = no_grad();
        var std = Config.InitializerRange;
        // residual projections scaled by 1/sqrt(2·layers) (GPT-2) so the stream's variance stays bounded
        var residualStd = std / Math.Sqrt(2.0 * Config.NumHiddenLayers);
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal) || name.EndsWith("subln.weight", StringComparison.Ordinal) || name.Contains(".lambda_", StringComparison.Ordinal))
            {
                continue;
            }
            if (name.EndsWith(".bias", StringComparison.Ordinal))
            {
                p.zero_();
            }
            else if (name.EndsWith("o_proj.weight", StringComparison.Ordinal) || name.EndsWith("down_proj.weight", StringComparison.Ordinal))
            {
                p.normal_(0, residualStd);
            }
            else
            {
                p.normal_(0, std);
            }
        }
    }

    /// <summary>The <c>model.</c> part of the checkpoint: embedding, blocks, final norm.</summary>
    private sealed class TransformerBody : nn.Module
    {
        internal readonly Embedding embed_tokens;
        internal readonly ModuleList<Block> layers;
        internal readonly RmsNorm norm;

        internal TransformerBody(ModelConfig config) : base(nameof(TransformerBody))
        {
            embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize);
            layers = nn.ModuleList([.. Enumerable.Range(0, config.NumHiddenLayers).Select(i => new Block(config, i))]);
            norm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
            RegisterComponents();
        }
    }
}
