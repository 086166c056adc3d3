using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Pollen.Model.Generation;
using Pollen.Node.Api.Responses;

namespace Pollen.Node.Api;

internal sealed partial class ApiHandlers
{
    /// <summary><c>POST /v1/chat/completions</c>: answers a conversation written out by <see cref="ChatPrompt"/>.</summary>
    public async Task ChatAsync(HttpContext context)
    {
        var (document, fields) = await ReadAsync(context).ConfigureAwait(false);
        GenerationRequest request;
        using (document)
        {
            request = OpenAiRequests.Chat(fields, model);
        }
        var id = OpenAiJson.NewId("chatcmpl-");
        var created = Now();
        var clock = Stopwatch.StartNew();
        var ct = context.RequestAborted;
        if (!request.Stream)
        {
            var result = await TextGenerator.GenerateToEndAsync(model.Model, model.Tokenizer, request.PromptIds, request.Options, ct).ConfigureAwait(false);
            var reason = OpenAiJson.FinishReason(result.Finish);
            LogGenerated(context, request.PromptIds.Length, result.Ids.Count, reason, clock);
            await WriteJsonAsync(context, new ChatCompletion(id, created, model.Id,
                [new ChatChoice(0, new AssistantMessage(result.Text.TrimStart()), reason)],
                new Usage(request.PromptIds.Length, result.Ids.Count))).ConfigureAwait(false);
            return;
        }

        await using var tokens = TextGenerator.GenerateAsync(model.Model, model.Tokenizer, request.PromptIds, request.Options, ct).GetAsyncEnumerator(ct);
        var more = await tokens.MoveNextAsync().ConfigureAwait(false); // before the status line: a failure here still gets its status code
        ServerSentEvents.Start(context.Response);
        // OpenAI's order: a chunk with the role, content deltas, a chunk with the finish reason, [DONE]
        await ServerSentEvents.WriteAsync(context.Response, Chunk(id, created, new ChatDelta("assistant", ""), null), ct).ConfigureAwait(false);
        var count = 0;
        var started = false;
        var finish = "length";
        for (; more; more = await tokens.MoveNextAsync().ConfigureAwait(false))
        {
            var token = tokens.Current;
            count++;
            finish = token.Finish is { } f ? OpenAiJson.FinishReason(f) : finish;
            var text = started ? token.Text : token.Text.TrimStart();
            if (text.Length == 0)
            {
                continue;
            }
            started = true;
            await ServerSentEvents.WriteAsync(context.Response, Chunk(id, created, new ChatDelta(null, text), null), ct).ConfigureAwait(false);
        }
        LogGenerated(context, request.PromptIds.Length, count, finish, clock);
        await ServerSentEvents.WriteAsync(context.Response, Chunk(id, created, new ChatDelta(null, null), finish), ct).ConfigureAwait(false);
        if (request.IncludeUsage)
        {
            await ServerSentEvents.WriteAsync(context.Response, new ChatChunk(id, created, model.Id, [], new Usage(request.PromptIds.Length, count)), ct).ConfigureAwait(false);
        }
        await ServerSentEvents.WriteDoneAsync(context.Response, ct).ConfigureAwait(false);
    }

    private ChatChunk Chunk(string id, long created, ChatDelta delta, string? finish) =>
        new(id, created, model.Id, [new ChatChunkChoice(0, delta, finish)]);
}
