using System.Text.Json;
using Pollen.Model.Generation;

namespace Pollen.Node.Api;

/// <summary>
/// Reads <c>/v1/completions</c> and <c>/v1/chat/completions</c> bodies. OpenAI's sampling fields keep
/// their meaning and ranges (temperature 0..2, 0 = greedy; default 1); <c>top_k</c> and
/// <c>repetition_penalty</c> are accepted as extensions (as vLLM does). Fields this server cannot honour
/// (<c>n</c> above 1, <c>echo</c>, log probabilities, tools, non-zero frequency/presence penalties)
/// are refused rather than ignored, so a client never silently gets something else than it asked for.
/// Unknown fields are ignored.
/// </summary>
internal static class OpenAiRequests
{
    /// <summary>OpenAI's limit on stop sequences.</summary>
    public const int MaxStops = 4;

    public static (GenerationRequest Request, bool ReturnTokenIds) Completion(RequestFields fields, ServedModel model, ApiOptions options)
    {
        RequestChecks.Model(fields, model);
        var ids = CompletionPrompt(fields, model);
        var maxTokens = fields.Integer("max_tokens", v => v >= 1, "at least 1");
        var budget = RequestChecks.MaxNewTokens(model, ids.Length, "prompt", maxTokens, "max_tokens", options.DefaultCompletionTokens);
        RequestChecks.Unsupported(fields.Bool("echo") == true, "echo", "leave it out or send false; the response holds the completion only");
        RequestChecks.Unsupported(fields.Get("logprobs") is not null, "logprobs", "leave it out");
        RequestChecks.Unsupported(fields.Integer("best_of", v => v >= 1, "at least 1") is > 1, "best_of", "send 1 or leave it out");
        RequestChecks.Unsupported(fields.String("suffix") is { Length: > 0 }, "suffix", "leave it out");
        var generation = Sampling(fields, budget, fields.StopStrings("stop", MaxStops));
        return (new GenerationRequest(ids, generation, fields.Bool("stream") ?? false, IncludeUsage(fields)), fields.Bool("return_token_ids") ?? false);
    }

    public static GenerationRequest Chat(RequestFields fields, ServedModel model)
    {
        RequestChecks.Model(fields, model);
        var prompt = ChatPrompt.Format(Messages(fields));
        var ids = model.Encode(prompt, "messages");
        // max_completion_tokens replaced max_tokens in OpenAI's chat API; both are read
        var param = fields.Get("max_completion_tokens") is not null ? "max_completion_tokens" : "max_tokens";
        var maxTokens = fields.Integer(param, v => v >= 1, "at least 1");
        var budget = RequestChecks.MaxNewTokens(model, ids.Length, "messages", maxTokens, param, fallback: null);
        RequestChecks.Unsupported(fields.Bool("logprobs") == true, "logprobs", "send false or leave it out");
        RequestChecks.Unsupported(fields.Get("tools") is { ValueKind: JsonValueKind.Array } tools && tools.GetArrayLength() > 0, "tools", "this model has no tool calling; leave it out");
        RequestChecks.Unsupported(fields.Get("functions") is { ValueKind: JsonValueKind.Array } functions && functions.GetArrayLength() > 0, "functions", "this model has no function calling; leave it out");
        if (fields.Get("response_format") is { } format
            && !(format.ValueKind == JsonValueKind.Object && format.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text"))
        {
            throw ApiException.BadRequest("response_format", "only {\"type\": \"text\"} is supported as 'response_format'; leave it out", "unsupported_parameter");
        }
        var stops = fields.StopStrings("stop", MaxStops).Append(ChatPrompt.UserTurn).Distinct().ToList();
        return new GenerationRequest(ids, Sampling(fields, budget, stops), fields.Bool("stream") ?? false, IncludeUsage(fields));
    }

    /// <summary>The sampling fields shared by both endpoints.</summary>
    private static GenerationOptions Sampling(RequestFields fields, int maxNewTokens, IReadOnlyList<string> stops)
    {
        RequestChecks.Unsupported(fields.Integer("n", v => v >= 1, "at least 1") is > 1, "n", "send 1 or leave it out, and make several requests for several completions");
        foreach (var penalty in new[] { "frequency_penalty", "presence_penalty" })
        {
            var value = fields.Number(penalty, v => v is >= -2 and <= 2, "between -2 and 2");
            RequestChecks.Unsupported(value is not null and not 0, penalty,
                "send 0, or use 'repetition_penalty' (above 1 discourages tokens already in the prompt or output)");
        }
        if (fields.Get("logit_bias") is { } bias && !(bias.ValueKind == JsonValueKind.Object && !bias.EnumerateObject().Any()))
        {
            throw ApiException.BadRequest("logit_bias", "'logit_bias' is not supported by this server; leave it out", "unsupported_parameter");
        }
        var topK = fields.Integer("top_k", v => v >= -1, "an integer ≥ 0 (0 or -1 keep every token)") ?? 0;
        var options = new GenerationOptions
        {
            MaxNewTokens = maxNewTokens,
            Temperature = fields.Number("temperature", v => v is >= 0 and <= 2, "between 0 and 2 (0 = greedy)") ?? 1.0,
            TopP = fields.Number("top_p", v => v is > 0 and <= 1, "in (0, 1]") ?? 1.0,
            TopK = (int)Math.Clamp(topK, 0, int.MaxValue),
            RepetitionPenalty = fields.Number("repetition_penalty", v => v > 0, "above 0 (1 = off)") ?? 1.0,
            StopStrings = stops,
            Seed = RequestChecks.Seed(fields),
        };
        return RequestChecks.Validated(options);
    }

    private static bool IncludeUsage(RequestFields fields)
    {
        if (fields.Get("stream_options") is not { } streamOptions)
        {
            return false;
        }
        if (streamOptions.ValueKind != JsonValueKind.Object)
        {
            throw RequestFields.WrongType("stream_options", "an object", streamOptions);
        }
        return new RequestFields(streamOptions).Bool("include_usage") ?? false;
    }

    /// <summary>A string, an array with one string, or an array of token ids.</summary>
    private static int[] CompletionPrompt(RequestFields fields, ServedModel model)
    {
        if (fields.Get("prompt") is not { } prompt)
        {
            throw ApiException.BadRequest("prompt", "'prompt' is required: the text to continue, e.g. {\"prompt\": \"Once upon a time\"}", "missing_required_parameter");
        }
        if (prompt.ValueKind == JsonValueKind.String)
        {
            return model.Encode(prompt.GetString()!, "prompt");
        }
        if (prompt.ValueKind != JsonValueKind.Array)
        {
            throw RequestFields.WrongType("prompt", "a string or an array of token ids", prompt);
        }
        var items = prompt.EnumerateArray().ToList();
        if (items.Count == 1 && items[0].ValueKind == JsonValueKind.String)
        {
            return model.Encode(items[0].GetString()!, "prompt");
        }
        if (items.Count == 0)
        {
            throw ApiException.BadRequest("prompt", "'prompt' is empty; give text or at least one token id");
        }
        if (items.Any(i => i.ValueKind is JsonValueKind.String or JsonValueKind.Array))
        {
            throw ApiException.BadRequest("prompt", "one prompt per request: send a string or an array of token ids, not several prompts", "unsupported_parameter");
        }
        var vocab = model.Model.Config.VocabSize;
        var ids = new int[items.Count];
        for (var i = 0; i < ids.Length; i++)
        {
            if (items[i].ValueKind != JsonValueKind.Number || !items[i].TryGetInt32(out ids[i]) || ids[i] < 0 || ids[i] >= vocab)
            {
                throw ApiException.BadRequest("prompt", $"prompt[{i}] must be a token id in 0..{vocab - 1}, got {items[i].GetRawText()}");
            }
        }
        return ids;
    }

    private static List<ChatPrompt.Message> Messages(RequestFields fields)
    {
        if (fields.Get("messages") is not { } messages)
        {
            throw ApiException.BadRequest("messages", "'messages' is required: an array like [{\"role\": \"user\", \"content\": \"Hello\"}]", "missing_required_parameter");
        }
        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw RequestFields.WrongType("messages", "an array of messages", messages);
        }
        var list = new List<ChatPrompt.Message>();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var path = $"messages[{index++}]";
            if (message.ValueKind != JsonValueKind.Object)
            {
                throw RequestFields.WrongType(path, "an object with 'role' and 'content'", message);
            }
            var item = new RequestFields(message);
            var role = item.String("role") ?? throw ApiException.BadRequest($"{path}.role", $"'{path}.role' is required: system, user or assistant", "missing_required_parameter");
            var speaker = role switch
            {
                "system" or "developer" => ChatPrompt.Role.System,
                "user" => ChatPrompt.Role.User,
                "assistant" => ChatPrompt.Role.Assistant,
                _ => throw ApiException.BadRequest($"{path}.role", $"'{path}.role' is '{role}'; this server takes system, user and assistant messages"),
            };
            list.Add(new ChatPrompt.Message(speaker, Content(item, path, speaker)));
        }
        return list.Count > 0 ? list : throw ApiException.BadRequest("messages", "'messages' is empty; give at least one message");
    }

    /// <summary>A string or an array of text parts; an assistant message may have none.</summary>
    private static string Content(RequestFields message, string path, ChatPrompt.Role speaker)
    {
        var param = $"{path}.content";
        switch (message.Get("content"))
        {
            case null:
                return speaker == ChatPrompt.Role.Assistant ? "" : throw ApiException.BadRequest(param, $"'{param}' is required: the message text", "missing_required_parameter");
            case { ValueKind: JsonValueKind.String } text:
                return text.GetString()!;
            case { ValueKind: JsonValueKind.Array } parts:
                var builder = new System.Text.StringBuilder();
                foreach (var part in parts.EnumerateArray())
                {
                    var fields = part.ValueKind == JsonValueKind.Object ? new RequestFields(part) : throw RequestFields.WrongType(param, "a string or an array of text parts", part);
                    var type = fields.String("type");
                    if (type != "text")
                    {
                        throw ApiException.BadRequest(param, $"'{param}' has a part of type '{type}'; this server reads text parts only", "unsupported_parameter");
                    }
                    builder.Append(fields.String("text") ?? throw ApiException.BadRequest(param, $"a text part of '{param}' has no 'text'", "missing_required_parameter"));
                }
                return builder.ToString();
            case { } other:
                throw RequestFields.WrongType(param, "a string or an array of text parts", other);
        }
    }
}
