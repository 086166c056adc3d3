using System.Text.Json.Nodes;

namespace Pollen.Tests.Model.Tokenizers;

/// <summary>
/// Tiny <c>tokenizer.json</c> files built in code (no downloads), shaped like the real ones: a GPT-2 style
/// byte-level BPE and a Llama-2 style SentencePiece BPE with byte fallback.
/// </summary>
internal static class TestTokenizerFiles
{
    /// <summary>Byte-level merges in rank order; merge r creates token id 256 + r.</summary>
    public static readonly string[] ByteLevelMerges =
    [
        "h e", "l l", "he ll", "hell o", "Ġ t", "Ġt he", "Ġ w", "o r", "Ġw or", "l d",
        "Ġwor ld", "a n", "an d", "Ġ and", "Ġ hello", "i n", "in g", "Ã ¼", "Ġ Ġ", "Ċ Ċ",
        "Ġ s", "Ġs ing", "' s", "g r", "Ã¼ n", "gr Ã¼n", "Ġ grÃ¼n",
    ];

    /// <summary>Id of the special added token <c>&lt;|endoftext|&gt;</c> in the byte-level file.</summary>
    public const int EndOfText = 283;

    /// <summary>Id of the non-special added token <c>&lt;|sep|&gt;</c> in the byte-level file.</summary>
    public const int Separator = 284;

    /// <summary>Id of "Ġxyz", a vocabulary token no merge produces (for <c>ignore_merges</c>).</summary>
    public const int Xyz = 285;

    /// <summary>SentencePiece-style single characters after the 3 control and 256 byte tokens (ids 259..).</summary>
    public const string SentencePieceChars = "▁helowrdtanis";

    /// <summary>SentencePiece-style merges in rank order; merge r creates token id 272 + r.</summary>
    public static readonly string[] SentencePieceMerges =
    [
        "▁ t", "h e", "▁t he", "l l", "he ll", "hell o", "▁ hello", "▁ w", "o r", "▁w or",
        "l d", "▁wor ld", "▁ ▁", "a n", "▁ an",
    ];

    /// <summary>The GPT-2 byte-to-character table, written independently of the code under test.</summary>
    public static char ByteChar(int b)
    {
        var next = 256;
        for (var i = 0; i < 256; i++)
        {
            var printable = (i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
            var c = printable ? (char)i : (char)next++;
            if (i == b)
            {
                return c;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(b));
    }

    /// <summary>
    /// GPT-2 style: byte b has id b, merges as above, <c>&lt;|endoftext|&gt;</c> (special) and
    /// <c>&lt;|sep|&gt;</c> (not special) added. <paramref name="llama3"/> switches to Llama 3's layout:
    /// Split regex + ByteLevel without regex, <c>ignore_merges</c>, merges as pairs.
    /// </summary>
    public static string ByteLevel(bool llama3 = false)
    {
        var vocab = new JsonObject();
        for (var b = 0; b < 256; b++)
        {
            vocab[ByteChar(b).ToString()] = b;
        }

        for (var r = 0; r < ByteLevelMerges.Length; r++)
        {
            vocab[ByteLevelMerges[r].Replace(" ", "")] = 256 + r;
        }

        vocab["Ġxyz"] = Xyz;
        var merges = new JsonArray();
        foreach (var merge in ByteLevelMerges)
        {
            merges.Add(llama3 ? new JsonArray(merge.Split(' ')[0], merge.Split(' ')[1]) : JsonValue.Create(merge));
        }

        JsonNode preTokenizer = llama3
            ? new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split",
                        ["pattern"] = new JsonObject { ["Regex"] = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+" },
                        ["behavior"] = "Isolated",
                        ["invert"] = false,
                    },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
            }
            : new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };

        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(
                AddedToken(EndOfText, "<|endoftext|>", special: true),
                AddedToken(Separator, "<|sep|>", special: false)),
            ["normalizer"] = null,
            ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = llama3 ? null : "",
                ["end_of_word_suffix"] = llama3 ? null : "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = llama3,
                ["vocab"] = vocab,
                ["merges"] = merges,
            },
        };
        return root.ToJsonString();
    }

    /// <summary>
    /// Llama-2 style: <c>&lt;unk&gt;</c>=0, <c>&lt;s&gt;</c>=1, <c>&lt;/s&gt;</c>=2, <c>&lt;0x00&gt;</c>..<c>&lt;0xFF&gt;</c>=3..258,
    /// then <see cref="SentencePieceChars"/> and the merges. <paramref name="metaspace"/> uses the newer
    /// Metaspace pre-tokenizer/decoder (prepend_scheme "first") instead of the Prepend+Replace normalizer.
    /// </summary>
    public static string SentencePiece(bool metaspace = false, bool byteFallback = true)
    {
        var vocab = new JsonObject { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (var b = 0; b < 256; b++)
        {
            vocab[$"<0x{b:X2}>"] = 3 + b;
        }

        for (var i = 0; i < SentencePieceChars.Length; i++)
        {
            vocab[SentencePieceChars[i].ToString()] = 259 + i;
        }

        for (var r = 0; r < SentencePieceMerges.Length; r++)
        {
            vocab[SentencePieceMerges[r].Replace(" ", "")] = 272 + r;
        }

        var merges = new JsonArray();
        foreach (var merge in SentencePieceMerges)
        {
            merges.Add(merge);
        }

        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(
                AddedToken(0, "<unk>", special: true),
                AddedToken(1, "<s>", special: true),
                AddedToken(2, "</s>", special: true)),
            ["normalizer"] = metaspace
                ? null
                : new JsonObject
                {
                    ["type"] = "Sequence",
                    ["normalizers"] = new JsonArray(
                        new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" },
                        new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" }),
                },
            ["pre_tokenizer"] = metaspace
                ? new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = false }
                : null,
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(
                    new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<s>", ["type_id"] = 0 } },
                    new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
            },
            ["decoder"] = metaspace
                ? new JsonObject
                {
                    ["type"] = "Sequence",
                    ["decoders"] = new JsonArray(
                        new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = false },
                        new JsonObject { ["type"] = "ByteFallback" },
                        new JsonObject { ["type"] = "Fuse" }),
                }
                : new JsonObject
                {
                    ["type"] = "Sequence",
                    ["decoders"] = new JsonArray(
                        new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " },
                        new JsonObject { ["type"] = "ByteFallback" },
                        new JsonObject { ["type"] = "Fuse" },
                        new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
                },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = "<unk>",
                ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null,
                ["fuse_unk"] = true,
                ["byte_fallback"] = byteFallback,
                ["vocab"] = vocab,
                ["merges"] = merges,
            },
        };
        return root.ToJsonString();
    }

    /// <summary>Replaces the JSON value at <paramref name="path"/> (dot-separated) in a tokenizer.json.</summary>
    public static string With(string json, string path, JsonNode? value)
    {
        var root = JsonNode.Parse(json)!;
        var parts = path.Split('.');
        var node = root;
        foreach (var part in parts[..^1])
        {
            node = node[part]!;
        }

        node[parts[^1]] = value;
        return root.ToJsonString();
    }

    private static JsonObject AddedToken(int id, string content, bool special) => new()
    {
        ["id"] = id,
        ["content"] = content,
        ["single_word"] = false,
        ["lstrip"] = false,
        ["rstrip"] = false,
        ["normalized"] = !special,
        ["special"] = special,
    };
}
