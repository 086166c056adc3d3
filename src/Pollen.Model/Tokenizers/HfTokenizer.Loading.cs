using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Pollen.Model.Tokenizers;

public sealed partial class HfTokenizer
{
    /// <summary>The Hugging Face tokenizer file: vocab, merges, added tokens and the pipeline.</summary>
    public const string TokenizerFileName = "tokenizer.json";

    /// <summary>Optional file naming <c>bos_token</c>/<c>eos_token</c> and saying <c>add_bos_token</c>.</summary>
    public const string TokenizerConfigFileName = "tokenizer_config.json";

    /// <summary>Optional file naming <c>bos_token</c>/<c>eos_token</c>, read when <c>tokenizer_config.json</c> does not.</summary>
    public const string SpecialTokensMapFileName = "special_tokens_map.json";

    /// <summary>Ids above this are treated as a corrupt file rather than allocated.</summary>
    private const int MaxTokenId = 1 << 24;

    private const string SupportedModels =
        "BPE: byte-level BPE as in GPT-2, Llama 3 and Qwen, or SentencePiece-style BPE with byte_fallback as in Llama 2 and Mistral";

    private HfTokenizer(JsonElement root, JsonElement? config, JsonElement? specialTokensMap)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new TokenizerException("tokenizer.json: the top level must be a JSON object.");
        }

        var model = HfJson.Get(root, "model") ?? throw new TokenizerException("tokenizer.json: 'model' is missing.");
        var modelType = HfJson.GetString(model, "type", "model")
            ?? (HfJson.Get(model, "merges") is not null ? "BPE" : throw HfJson.Invalid("model", "type", "is missing"));
        if (modelType != "BPE")
        {
            throw new TokenizerException($"tokenizer.json: model type '{modelType}' is not supported (supported: {SupportedModels}).");
        }

        foreach (var affix in (ReadOnlySpan<string>)["continuing_subword_prefix", "end_of_word_suffix"])
        {
            if (!string.IsNullOrEmpty(HfJson.GetString(model, affix, "model")))
            {
                throw new TokenizerException($"tokenizer.json: model.{affix} is not supported (it belongs to word-piece style BPE, not to byte-level or SentencePiece-style BPE).");
            }
        }

        var vocab = ReadVocab(model);
        var merges = ReadMerges(model);
        var unknownToken = HfJson.GetString(model, "unk_token", "model");
        _fuseUnknown = unknownToken is not null && HfJson.GetBool(model, "fuse_unk", false, "model");
        _ignoreMerges = HfJson.GetBool(model, "ignore_merges", false, "model");
        _vocab = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _byteFallbackIds = HfJson.GetBool(model, "byte_fallback", false, "model") ? ByteTokenIds(vocab) : null;
        _innerPairs = InnerPairs(vocab.Keys);

        try
        {
            _bpe = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges,
                UnknownToken = unknownToken,
                FuseUnknownTokens = _fuseUnknown,
            });
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new TokenizerException($"tokenizer.json: the BPE model is inconsistent: {e.Message}", e);
        }

        _addedTokens = ReadAddedTokens(root);
        _addedTokenRegex = AddedTokenRegex(_addedTokens.Values);
        _nonSpecialAddedTokenRegex = AddedTokenRegex(_addedTokens.Values.Where(t => !t.Special));
        _normalizer = HfNormalizer.Parse(HfJson.Get(root, "normalizer"));
        _preTokenizer = HfPreTokenizer.Parse(HfJson.Get(root, "pre_tokenizer"));
        _decoder = HfDecoder.Parse(HfJson.Get(root, "decoder"));

        var maxId = vocab.Count == 0 ? -1 : vocab.Values.Max();
        foreach (var token in _addedTokens.Values)
        {
            maxId = Math.Max(maxId, token.Id);
        }

        _idToToken = new string?[maxId + 1];
        _isSpecial = new bool[maxId + 1];
        foreach (var (token, id) in vocab)
        {
            _idToToken[id] = token;
        }

        foreach (var token in _addedTokens.Values)
        {
            _idToToken[token.Id] = token.Content;
            _isSpecial[token.Id] = token.Special;
        }

        (BosToken, BosId) = ResolveSpecial("bos_token", config, specialTokensMap);
        (EosToken, EosId) = ResolveSpecial("eos_token", config, specialTokensMap);
        AddBosToken = BosId is not null
            && (ReadAddBosToken(config) ?? TemplateStartsWith(HfJson.Get(root, "post_processor"), BosToken!));
    }

    /// <summary>
    /// Loads <c>tokenizer.json</c> from <paramref name="directory"/>, plus <c>tokenizer_config.json</c> and
    /// <c>special_tokens_map.json</c> when present (for the BOS/EOS token names).
    /// </summary>
    /// <exception cref="TokenizerException">A file is malformed or uses an unsupported feature.</exception>
    public static HfTokenizer Load(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var path = Path.Combine(directory, TokenizerFileName);
        if (!File.Exists(path))
        {
            throw new TokenizerException($"'{path}' does not exist.");
        }

        try
        {
            return FromJson(
                File.ReadAllText(path),
                ReadIfExists(Path.Combine(directory, TokenizerConfigFileName)),
                ReadIfExists(Path.Combine(directory, SpecialTokensMapFileName)));
        }
        catch (TokenizerException e)
        {
            throw new TokenizerException($"{e.Message} (in '{directory}')", e);
        }
    }

    /// <summary>Builds a tokenizer from the text of <c>tokenizer.json</c> and optionally the two config files.</summary>
    /// <exception cref="TokenizerException">The JSON is malformed or uses an unsupported feature.</exception>
    public static HfTokenizer FromJson(string tokenizerJson, string? tokenizerConfigJson = null, string? specialTokensMapJson = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizerJson);
        using var root = ParseJson(tokenizerJson, TokenizerFileName);
        using var config = tokenizerConfigJson is null ? null : ParseJson(tokenizerConfigJson, TokenizerConfigFileName);
        using var map = specialTokensMapJson is null ? null : ParseJson(specialTokensMapJson, SpecialTokensMapFileName);
        return new HfTokenizer(root.RootElement, config?.RootElement, map?.RootElement);
    }

    private static string? ReadIfExists(string path) => File.Exists(path) ? File.ReadAllText(path) : null;

    private static JsonDocument ParseJson(string json, string fileName)
    {
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{fileName} is not valid JSON: {e.Message}", e);
        }
    }

    private static Dictionary<string, int> ReadVocab(JsonElement model)
    {
        var node = HfJson.Get(model, "vocab");
        if (node is not { ValueKind: JsonValueKind.Object })
        {
            throw HfJson.Invalid("model", "vocab", "must be an object mapping token text to id");
        }

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in node.Value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id) || id is < 0 or > MaxTokenId)
            {
                throw HfJson.Invalid("model.vocab", $"\"{entry.Name}\"", $"must be an id between 0 and {MaxTokenId}");
            }

            if (!vocab.TryAdd(entry.Name, id))
            {
                throw HfJson.Invalid("model.vocab", $"\"{entry.Name}\"", "appears twice");
            }
        }

        return vocab;
    }

    /// <summary>Merges as "left right" strings, from either the old string form or the newer pair form.</summary>
    private static List<string> ReadMerges(JsonElement model)
    {
        var merges = new List<string>();
        var index = 0;
        foreach (var entry in HfJson.GetArray(model, "merges", "model"))
        {
            var where = $"model.merges[{index++}]";
            if (entry.ValueKind == JsonValueKind.String)
            {
                merges.Add(entry.GetString()!);
                continue;
            }

            if (entry.ValueKind != JsonValueKind.Array || entry.GetArrayLength() != 2
                || entry[0].ValueKind != JsonValueKind.String || entry[1].ValueKind != JsonValueKind.String)
            {
                throw new TokenizerException($"tokenizer.json: {where} must be \"left right\" or [\"left\", \"right\"].");
            }

            var left = entry[0].GetString()!;
            var right = entry[1].GetString()!;
            if (left.Contains(' ', StringComparison.Ordinal) || right.Contains(' ', StringComparison.Ordinal))
            {
                throw new TokenizerException($"tokenizer.json: {where} merges tokens containing a space, which Microsoft.ML.Tokenizers 2.0.1 cannot represent.");
            }

            merges.Add(left + " " + right);
        }

        return merges;
    }

    private static Dictionary<string, AddedToken> ReadAddedTokens(JsonElement root)
    {
        var tokens = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        var index = 0;
        foreach (var entry in HfJson.GetArray(root, "added_tokens", "tokenizer"))
        {
            var where = $"added_tokens[{index++}]";
            var id = HfJson.GetInt(entry, "id", -1, where);
            if (id is < 0 or > MaxTokenId)
            {
                throw HfJson.Invalid(where, "id", $"must be an id between 0 and {MaxTokenId}");
            }

            var content = HfJson.RequireString(entry, "content", where);
            if (content.Length == 0)
            {
                throw HfJson.Invalid(where, "content", "must not be empty");
            }

            tokens[content] = new AddedToken(
                id,
                content,
                HfJson.GetBool(entry, "special", false, where),
                HfJson.GetBool(entry, "lstrip", false, where),
                HfJson.GetBool(entry, "rstrip", false, where));
        }

        return tokens;
    }

    /// <summary>Matches added tokens leftmost-longest, like Hugging Face's Aho-Corasick matcher.</summary>
    private static Regex? AddedTokenRegex(IEnumerable<AddedToken> tokens)
    {
        var alternatives = tokens
            .Select(t => t.Content)
            .OrderByDescending(c => c.Length)
            .ThenBy(c => c, StringComparer.Ordinal)
            .Select(Regex.Escape)
            .ToList();
        return alternatives.Count == 0
            ? null
            : new Regex(string.Join('|', alternatives), RegexOptions.Compiled | RegexOptions.CultureInvariant, HfJson.RegexTimeout);
    }

    /// <summary>Ids of the SentencePiece byte tokens <c>&lt;0x00&gt;</c>..<c>&lt;0xFF&gt;</c>; -1 where absent.</summary>
    private static int[] ByteTokenIds(Dictionary<string, int> vocab)
    {
        var ids = new int[256];
        for (var b = 0; b < 256; b++)
        {
            ids[b] = vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
        }

        return ids;
    }

    /// <summary>Every pair of adjacent chars inside a vocabulary token: BPE can only merge across such a pair.</summary>
    private static HashSet<uint> InnerPairs(IEnumerable<string> tokens)
    {
        var pairs = new HashSet<uint>();
        foreach (var token in tokens)
        {
            for (var i = 1; i < token.Length; i++)
            {
                pairs.Add(Pair(token[i - 1], token[i]));
            }
        }

        return pairs;
    }

    /// <summary>
    /// Reads <paramref name="key"/> (a string or an <c>{"content": ...}</c> object) from
    /// <c>tokenizer_config.json</c>, or from <c>special_tokens_map.json</c> when the former lacks the key.
    /// </summary>
    private (string? Token, int? Id) ResolveSpecial(string key, JsonElement? config, JsonElement? specialTokensMap)
    {
        JsonElement? value = null;
        var source = TokenizerConfigFileName;
        if (config is { } c && c.ValueKind == JsonValueKind.Object && c.TryGetProperty(key, out var fromConfig))
        {
            value = fromConfig;
        }
        else if (specialTokensMap is { } m && m.ValueKind == JsonValueKind.Object && m.TryGetProperty(key, out var fromMap))
        {
            value = fromMap;
            source = SpecialTokensMapFileName;
        }

        var token = value?.ValueKind switch
        {
            null or JsonValueKind.Null => null,
            JsonValueKind.String => value.Value.GetString(),
            JsonValueKind.Object when value.Value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String
                => content.GetString(),
            _ => throw new TokenizerException($"{source}: {key} must be a string or an object with a string 'content'."),
        };
        if (token is null)
        {
            return (null, null);
        }

        return (token, TokenToId(token) ?? throw new TokenizerException($"{source} names {key} '{token}', but tokenizer.json has no such token."));
    }

    /// <summary><c>add_bos_token</c> from <c>tokenizer_config.json</c>, or null when it is not set.</summary>
    private static bool? ReadAddBosToken(JsonElement? config)
    {
        if (config is not { } c || HfJson.Get(c, "add_bos_token") is not { } flag)
        {
            return null;
        }

        return flag.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new TokenizerException($"{TokenizerConfigFileName}: add_bos_token must be true or false."),
        };
    }

    /// <summary>Whether a <c>TemplateProcessing</c> post-processor (possibly inside a <c>Sequence</c>) starts with <paramref name="token"/>.</summary>
    private static bool TemplateStartsWith(JsonElement? postProcessor, string token)
    {
        if (postProcessor is not { ValueKind: JsonValueKind.Object } node)
        {
            return false;
        }

        if (HfJson.GetString(node, "type", "post_processor") == "Sequence")
        {
            return HfJson.GetArray(node, "processors", "post_processor").Any(p => TemplateStartsWith(p, token));
        }

        if (HfJson.GetString(node, "type", "post_processor") != "TemplateProcessing"
            || HfJson.Get(node, "single") is not { ValueKind: JsonValueKind.Array } single
            || single.GetArrayLength() == 0)
        {
            return false;
        }

        return HfJson.Get(single[0], "SpecialToken") is { } special && HfJson.GetString(special, "id", "post_processor.single[0]") == token;
    }
}
