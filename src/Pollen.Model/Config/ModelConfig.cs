using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Pollen.Model.Config;

/// <summary>
/// The shape of a decoder-only transformer, read from and written to a Hugging Face style
/// <c>config.json</c>. Standard keys keep their Hugging Face names so a Llama checkpoint's config loads
/// as it is; Pollen's own options use <c>pollen_*</c> keys. Keys this type does not model are kept and
/// written back unchanged.
/// </summary>
public sealed record ModelConfig
{
    /// <summary><c>model_type</c>; "llama" for every model Pollen builds.</summary>
    public string ModelType { get; init; } = "llama";

    /// <summary><c>hidden_size</c>: width of the residual stream.</summary>
    public int HiddenSize { get; init; } = 128;

    /// <summary><c>num_hidden_layers</c>: number of blocks.</summary>
    public int NumHiddenLayers { get; init; } = 4;

    /// <summary><c>num_attention_heads</c>: query heads per block.</summary>
    public int NumAttentionHeads { get; init; } = 4;

    /// <summary><c>num_key_value_heads</c>: key/value heads (grouped-query attention when fewer than query heads).</summary>
    public int NumKeyValueHeads { get; init; } = 4;

    /// <summary><c>head_dim</c>: width of one head; defaults to hidden_size / num_attention_heads.</summary>
    public int HeadDim { get; init; } = 32;

    /// <summary><c>intermediate_size</c>: width of the SwiGLU MLP.</summary>
    public int IntermediateSize { get; init; } = 352;

    /// <summary><c>rms_norm_eps</c>.</summary>
    public double RmsNormEps { get; init; } = 1e-5;

    /// <summary><c>rope_theta</c>: RoPE base frequency.</summary>
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary><c>rope_scaling</c> (Llama 3.1 style "llama3" or "linear"), or null.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary><c>vocab_size</c>.</summary>
    public int VocabSize { get; init; } = 264;

    /// <summary><c>max_position_embeddings</c>: the longest sequence the model accepts.</summary>
    public int MaxPositionEmbeddings { get; init; } = 512;

    /// <summary><c>tie_word_embeddings</c>: the LM head reuses the embedding matrix.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary><c>attention_bias</c>: biases on q/k/v/o projections (Qwen-style models).</summary>
    public bool AttentionBias { get; init; }

    /// <summary><c>mlp_bias</c>: biases on the MLP projections.</summary>
    public bool MlpBias { get; init; }

    /// <summary><c>bos_token_id</c>, or null.</summary>
    public int? BosTokenId { get; init; }

    /// <summary><c>eos_token_id</c>: one or more ids that end generation.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary><c>initializer_range</c>: std of the normal init of new weights.</summary>
    public double InitializerRange { get; init; } = 0.02;

    /// <summary><c>pollen_position_encoding</c>: "rope" (default) or "alibi".</summary>
    public PositionEncoding PositionEncoding { get; init; } = PositionEncoding.Rope;

    /// <summary><c>pollen_attention</c>: "standard" (default) or "differential".</summary>
    public AttentionKind Attention { get; init; } = AttentionKind.Standard;

    /// <summary>Keys of the file that this type does not model, written back as they were.</summary>
    public IReadOnlyDictionary<string, JsonNode?> ExtraKeys { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>Query heads per key/value head.</summary>
    public int KvGroups => NumAttentionHeads / NumKeyValueHeads;

    /// <summary>Throws <see cref="ModelConfigException"/> naming the first key whose value is not usable.</summary>
    public void Validate()
    {
        Positive("hidden_size", HiddenSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("num_key_value_heads", NumKeyValueHeads);
        Positive("head_dim", HeadDim);
        Positive("intermediate_size", IntermediateSize);
        Positive("vocab_size", VocabSize);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        if (NumAttentionHeads % NumKeyValueHeads != 0)
        {
            throw new ModelConfigException("num_key_value_heads",
                $"{NumKeyValueHeads} must divide num_attention_heads ({NumAttentionHeads})");
        }
        if (!(RmsNormEps > 0 && RmsNormEps < 1))
        {
            throw new ModelConfigException("rms_norm_eps", $"{RmsNormEps} must be in (0, 1)");
        }
        if (!(RopeTheta > 0))
        {
            throw new ModelConfigException("rope_theta", $"{RopeTheta} must be positive");
        }
        if (PositionEncoding == PositionEncoding.Rope && HeadDim % 2 != 0)
        {
            throw new ModelConfigException("head_dim", $"{HeadDim} must be even for RoPE");
        }
        if (Attention == AttentionKind.Differential)
        {
            if (HeadDim % 2 != 0 || (PositionEncoding == PositionEncoding.Rope && HeadDim % 4 != 0))
            {
                throw new ModelConfigException("head_dim",
                    $"{HeadDim} must be divisible by {(PositionEncoding == PositionEncoding.Rope ? 4 : 2)} for differential attention (each head splits in two halves)");
            }
        }
        if (BosTokenId is int bos && (bos < 0 || bos >= VocabSize))
        {
            throw new ModelConfigException("bos_token_id", $"{bos} is outside the vocabulary (vocab_size {VocabSize})");
        }
        foreach (var id in EosTokenIds)
        {
            if (id < 0 || id >= VocabSize)
            {
                throw new ModelConfigException("eos_token_id", $"{id} is outside the vocabulary (vocab_size {VocabSize})");
            }
        }
        RopeScaling?.Validate();
    }

    private static void Positive(string key, int value)
    {
        if (value <= 0)
        {
            throw new ModelConfigException(key, $"{value} must be a positive integer");
        }
    }

    /// <summary>Reads and validates <c>config.json</c>.</summary>
    public static ModelConfig Load(string path)
    {
        if (Directory.Exists(path))
        {
            path = Path.Combine(path, "config.json");
        }
        if (!File.Exists(path))
        {
            throw new ModelConfigException($"no model config at '{path}': a checkpoint directory holds config.json and model.safetensors");
        }
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (ModelConfigException e) when (e.Key.Length > 0)
        {
            throw new ModelConfigException(e.Key, $"{e.Message} (in {path})");
        }
    }

    /// <summary>Parses and validates the text of a <c>config.json</c>.</summary>
    public static ModelConfig Parse(string json)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject
                ?? throw new ModelConfigException("config.json must hold a JSON object");
        }
        catch (JsonException e)
        {
            throw new ModelConfigException($"config.json is not valid JSON: {e.Message}", e);
        }
        var reader = new ConfigReader(root);
        var hidden = reader.Int("hidden_size");
        var heads = reader.Int("num_attention_heads");
        var config = new ModelConfig
        {
            ModelType = reader.String("model_type", "llama"),
            HiddenSize = hidden,
            NumHiddenLayers = reader.Int("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = reader.Int("num_key_value_heads", heads),
            HeadDim = reader.Int("head_dim", heads > 0 && hidden % heads == 0 ? hidden / heads : 0),
            IntermediateSize = reader.Int("intermediate_size"),
            RmsNormEps = reader.Double("rms_norm_eps", 1e-6),
            RopeTheta = reader.Double("rope_theta", 10000.0),
            RopeScaling = RopeScaling.Read(reader),
            VocabSize = reader.Int("vocab_size"),
            MaxPositionEmbeddings = reader.Int("max_position_embeddings", 2048),
            TieWordEmbeddings = reader.Bool("tie_word_embeddings", false),
            AttentionBias = reader.Bool("attention_bias", false),
            MlpBias = reader.Bool("mlp_bias", false),
            BosTokenId = reader.OptionalInt("bos_token_id"),
            EosTokenIds = reader.IntOrIntList("eos_token_id"),
            InitializerRange = reader.Double("initializer_range", 0.02),
            PositionEncoding = reader.Enum("pollen_position_encoding", PositionEncoding.Rope),
            Attention = reader.Enum("pollen_attention", AttentionKind.Standard),
        };
        var act = reader.String("hidden_act", "silu");
        if (act is not ("silu" or "swish"))
        {
            throw new ModelConfigException("hidden_act", $"'{act}' is not supported; Pollen blocks use SwiGLU (silu)");
        }
        config = config with { ExtraKeys = reader.Unread() };
        config.Validate();
        return config;
    }

    /// <summary>
    /// A short hash of everything that shapes the computation (the keys <see cref="ToJson"/> writes, not
    /// unread extra keys), so peers can check they hold the same architecture before exchanging hidden
    /// states: 16 lowercase hex digits of SHA-256.
    /// </summary>
    public string Fingerprint()
    {
        var json = (this with { ExtraKeys = new Dictionary<string, JsonNode?>() }).ToJson();
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(json)))[..16];
    }

    /// <summary>Writes the config as <c>config.json</c> text (Hugging Face key names).</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["model_type"] = ModelType,
            ["hidden_size"] = HiddenSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["head_dim"] = HeadDim,
            ["intermediate_size"] = IntermediateSize,
            ["hidden_act"] = "silu",
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["vocab_size"] = VocabSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["attention_bias"] = AttentionBias,
            ["mlp_bias"] = MlpBias,
            ["initializer_range"] = InitializerRange,
            ["pollen_position_encoding"] = PositionEncoding.ToString().ToLowerInvariant(),
            ["pollen_attention"] = Attention.ToString().ToLowerInvariant(),
        };
        if (RopeScaling is not null)
        {
            o["rope_scaling"] = RopeScaling.ToJson();
        }
        if (BosTokenId is int bos)
        {
            o["bos_token_id"] = bos;
        }
        if (EosTokenIds.Count == 1)
        {
            o["eos_token_id"] = EosTokenIds[0];
        }
        else if (EosTokenIds.Count > 1)
        {
            o["eos_token_id"] = new JsonArray(EosTokenIds.Select(i => (JsonNode?)i).ToArray());
        }
        foreach (var (key, value) in ExtraKeys)
        {
            o[key] = value?.DeepClone();
        }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Number of parameters of the full model with this shape.</summary>
    public long ParameterCount()
    {
        long d = HiddenSize, q = (long)NumAttentionHeads * HeadDim, kv = (long)NumKeyValueHeads * HeadDim;
        long attn = (d * q) + (2 * d * kv) + (q * d) + (AttentionBias ? q + (2 * kv) + d : 0);
        if (Attention == AttentionKind.Differential)
        {
            attn += (4 * (HeadDim / 2)) + HeadDim;
        }
        long mlp = 3 * d * IntermediateSize;
        long block = attn + mlp + (2 * d);
        long embed = (long)VocabSize * d;
        return embed + (NumHiddenLayers * block) + d + (TieWordEmbeddings ? 0 : embed);
    }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{NumHiddenLayers} layers, d={HiddenSize}, heads={NumAttentionHeads}/{NumKeyValueHeads}, ffn={IntermediateSize}, vocab={VocabSize}, ctx={MaxPositionEmbeddings}, {PositionEncoding}, {Attention} attention, {ParameterCount() / 1e6:F2}M params");
}
