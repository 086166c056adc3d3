using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Pollen.Model.Generation;
using Pollen.Node.Api.Responses;

namespace Pollen.Node.Api;

internal sealed partial class ApiHandlers
{
    /// <summary><c>POST /input</c>: Hugging Face <c>generate</c> arguments in, <c>{"ok": true, "outputs": text}</c> out.</summary>
    public async Task InputAsync(HttpContext context)
    {
        var (document, fields) = await ReadAsync(context).ConfigureAwait(false);
        GenerationRequest request;
        using (document)
        {
            request = InputRequest.Read(fields, model, options);
        }
        var clock = Stopwatch.StartNew();
        var result = await TextGenerator.GenerateToEndAsync(model.Model, model.Tokenizer, request.PromptIds, request.Options, context.RequestAborted).ConfigureAwait(false);
        LogGenerated(context, request.PromptIds.Length, result.Ids.Count, OpenAiJson.FinishReason(result.Finish), clock);
        await WriteJsonAsync(context, new InputResult(result.Text)).ConfigureAwait(false);
    }
}
