using System.Text.Json.Serialization;

namespace Pollen.Node.Api.Responses;

// Response bodies in OpenAI's shapes (https://platform.openai.com/docs/api-reference). Property names are
// snake_case on the wire; nulls are written (OpenAI writes "logprobs": null, "finish_reason": null)
// except where marked; "id" and "object" come first, as in OpenAI's responses.

internal sealed record ModelList(IReadOnlyList<ModelCard> Data, [property: JsonPropertyOrder(-1)] string Object = "list");

internal sealed record ModelCard([property: JsonPropertyOrder(-2)] string Id, long Created, [property: JsonPropertyOrder(-1)] string Object = "model", string OwnedBy = "pollen");

internal sealed record Usage(int PromptTokens, int CompletionTokens)
{
    public int TotalTokens => PromptTokens + CompletionTokens;
}

internal sealed record Completion([property: JsonPropertyOrder(-2)] string Id, long Created, string Model, IReadOnlyList<CompletionChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Usage? Usage, [property: JsonPropertyOrder(-1)] string Object = "text_completion");

internal sealed record CompletionChoice(string Text, int Index, string? FinishReason,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<int>? TokenIds = null, object? Logprobs = null);

internal sealed record ChatCompletion([property: JsonPropertyOrder(-2)] string Id, long Created, string Model, IReadOnlyList<ChatChoice> Choices, Usage Usage, [property: JsonPropertyOrder(-1)] string Object = "chat.completion");

internal sealed record ChatChoice(int Index, AssistantMessage Message, string FinishReason, object? Logprobs = null);

internal sealed record AssistantMessage(string Content, string Role = "assistant", object? Refusal = null);

internal sealed record ChatChunk([property: JsonPropertyOrder(-2)] string Id, long Created, string Model, IReadOnlyList<ChatChunkChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Usage? Usage = null, [property: JsonPropertyOrder(-1)] string Object = "chat.completion.chunk");

internal sealed record ChatChunkChoice(int Index, ChatDelta Delta, string? FinishReason, object? Logprobs = null);

/// <summary>The first delta carries the role, later ones content, the last one nothing (<c>{}</c>).</summary>
internal sealed record ChatDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content);

internal sealed record InputResult(string Outputs, bool Ok = true);

internal sealed record ErrorBody(ErrorDetail Error,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Ok = null);

internal sealed record ErrorDetail(string Message, string Type, string? Param, string? Code);
