using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Pollen.Model.Generation;

namespace Pollen.Node.Api;

internal static class OpenAiJson
{
    /// <summary>
    /// snake_case names, nulls written, compact; text is escaped only where JSON requires (the body is
    /// never embedded in HTML), so non-ASCII text and quotes stay readable.
    /// </summary>
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>OpenAI's finish_reason: "stop" for an end-of-sequence token or a stop string, "length" for the budget or the context.</summary>
    public static string FinishReason(FinishReason finish) => finish == Model.Generation.FinishReason.Length ? "length" : "stop";

    /// <summary>"chatcmpl-…" / "cmpl-…" followed by 24 random hex digits.</summary>
    public static string NewId(string prefix) => prefix + Guid.NewGuid().ToString("N")[..24];
}
