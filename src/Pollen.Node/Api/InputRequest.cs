using Pollen.Model.Generation;

namespace Pollen.Node.Api;

/// <summary>
/// Reads a <c>POST /input</c> body: <c>prompt</c> (or <c>inputs</c>) plus generation arguments named as in
/// Hugging Face <c>generate</c> — <c>max_new_tokens</c>, <c>do_sample</c> (default false: greedy),
/// <c>temperature</c> (1), <c>top_k</c> (50), <c>top_p</c> (1), <c>repetition_penalty</c> (1) — and
/// Pollen's <c>seed</c>. Defaults are Hugging Face's; sampling arguments only matter with
/// <c>do_sample</c>, as there.
/// </summary>
internal static class InputRequest
{
    public static GenerationRequest Read(RequestFields fields, ServedModel model, ApiOptions options)
    {
        RequestChecks.Model(fields, model);
        var param = fields.Get("prompt") is null && fields.Get("inputs") is not null ? "inputs" : "prompt";
        var text = fields.String(param)
            ?? throw ApiException.BadRequest("prompt", "'prompt' is required: the text to continue, e.g. {\"prompt\": \"Once upon a time\", \"max_new_tokens\": 20}", "missing_required_parameter");
        var ids = model.Encode(text, param);
        var maxNewTokens = fields.Integer("max_new_tokens", v => v >= 1, "at least 1");
        var budget = RequestChecks.MaxNewTokens(model, ids.Length, param, maxNewTokens, "max_new_tokens", options.DefaultInputTokens);
        var doSample = fields.Bool("do_sample") ?? false;
        var temperature = fields.Number("temperature", v => v >= 0, "a number ≥ 0") ?? 1.0;
        if (doSample && temperature == 0)
        {
            throw ApiException.BadRequest("temperature", "'temperature' must be above 0 when 'do_sample' is true; for greedy decoding send \"do_sample\": false");
        }
        var generation = new GenerationOptions
        {
            MaxNewTokens = budget,
            Temperature = doSample ? temperature : 0, // 0 is the sampler's greedy
            TopK = (int)(fields.Integer("top_k", v => v is >= 0 and <= int.MaxValue, "an integer ≥ 0 (0 keeps every token)") ?? 50),
            TopP = fields.Number("top_p", v => v is > 0 and <= 1, "in (0, 1]") ?? 1.0,
            RepetitionPenalty = fields.Number("repetition_penalty", v => v > 0, "above 0 (1 = off)") ?? 1.0,
            Seed = RequestChecks.Seed(fields),
        };
        return new GenerationRequest(ids, RequestChecks.Validated(generation));
    }
}
