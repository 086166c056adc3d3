using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Pollen.Node.Api;

/// <summary>Reads a request body as one JSON object, turning every way it can be wrong into an <see cref="ApiException"/>.</summary>
internal static class RequestBody
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 32 };

    /// <summary>
    /// Parses the body (capped at <paramref name="maxBytes"/>; Kestrel enforces the same cap while
    /// reading) and returns its fields.
    /// </summary>
    public static async Task<(JsonDocument Document, RequestFields Fields)> ReadAsync(HttpRequest request, long maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes)
        {
            throw TooLarge(maxBytes);
        }
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, Options, cancellationToken).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(maxBytes);
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is long line ? $" at line {line + 1}, byte {e.BytePositionInLine + 1}" : "";
            throw ApiException.BadRequest(null, $"the request body is not valid JSON{where}; send one JSON object, e.g. {{\"prompt\": \"Hello\"}}", "invalid_json");
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            var kind = RequestFields.Describe(document.RootElement.ValueKind);
            document.Dispose();
            throw ApiException.BadRequest(null, $"the request body must be a JSON object, got {kind}", "invalid_json");
        }
        return (document, new RequestFields(document.RootElement));
    }

    private static ApiException TooLarge(long maxBytes) =>
        new(StatusCodes.Status413PayloadTooLarge, $"the request body is larger than {maxBytes} bytes; send a shorter prompt", ApiException.InvalidRequest, null, "request_too_large");
}
