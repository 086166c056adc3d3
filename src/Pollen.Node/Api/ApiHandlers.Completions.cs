using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Pollen.Model.Generation;
using Pollen.Node.Api.Responses;

namespace Pollen.Node.Api;

internal sealed partial class ApiHandlers
{
    /// <summary><c>POST /v1/completions</c>: continues a prompt (text, or token ids).</summary>
    public async Task CompletionsAsync(HttpContext context)
    {
        var (document, fields) = await ReadAsync(context).ConfigureAwait(false);
        GenerationRequest request;
        bool returnIds;
        using (document)
        {
            (request, returnIds) = OpenAiRequests.Completion(fields, model, options);
        }
        var id = OpenAiJson.NewId("cmpl-");
        var created = Now();
        var clock = Stopwatch.StartNew();
        var ct = context.RequestAborted;
        if (!request.Stream)
        {
            var result = await TextGenerator.GenerateToEndAsync(model.Model, model.Tokenizer, request.PromptIds, request.Options, ct).ConfigureAwait(false);
            var finish = OpenAiJson.FinishReason(result.Finish);
            LogGenerated(context, request.PromptIds.Length, result.Ids.Count, finish, clock);
            await WriteJsonAsync(context, new Completion(id, created, model.Id,
                [new CompletionChoice(result.Text, 0, finish, returnIds ? result.Ids : null)],
                new Usage(request.PromptIds.Length, result.Ids.Count))).ConfigureAwait(false);
            return;
        }

        await using var tokens = TextGenerator.GenerateAsync(model.Model, model.Tokenizer, request.PromptIds, request.Options, ct).GetAsyncEnumerator(ct);
        var more = await tokens.MoveNextAsync().ConfigureAwait(false); // before the status line: a failure here still gets its status code
        ServerSentEvents.Start(context.Response);
        var count = 0;
        var pendingIds = new List<int>();
        for (; more; more = await tokens.MoveNextAsync().ConfigureAwait(false))
        {
            var token = tokens.Current;
            count++;
            pendingIds.Add(token.Id);
            if (token.Text.Length == 0 && token.Finish is null)
            {
                continue; // nothing to show yet (a partial character, a possible stop string)
            }
            var finish = token.Finish is { } f ? OpenAiJson.FinishReason(f) : null;
            await ServerSentEvents.WriteAsync(context.Response, new Completion(id, created, model.Id,
                [new CompletionChoice(token.Text, 0, finish, returnIds ? pendingIds.ToArray() : null)], null), ct).ConfigureAwait(false);
            pendingIds.Clear();
            if (finish is not null)
            {
                LogGenerated(context, request.PromptIds.Length, count, finish, clock);
            }
        }
        if (request.IncludeUsage)
        {
            await ServerSentEvents.WriteAsync(context.Response, new Completion(id, created, model.Id, [], new Usage(request.PromptIds.Length, count)), ct).ConfigureAwait(false);
        }
        await ServerSentEvents.WriteDoneAsync(context.Response, ct).ConfigureAwait(false);
    }
}
