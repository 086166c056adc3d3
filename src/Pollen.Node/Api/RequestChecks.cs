using Microsoft.AspNetCore.Http;
using Pollen.Model.Generation;

namespace Pollen.Node.Api;

/// <summary>Checks shared by every endpoint: the model id and the context budget.</summary>
internal static class RequestChecks
{
    /// <summary>A request naming another model gets 404 naming the served one; no <c>model</c> field means the served model.</summary>
    public static void Model(RequestFields fields, ServedModel model)
    {
        var id = fields.String("model");
        if (id is not null && !string.Equals(id, model.Id, StringComparison.Ordinal))
        {
            throw new ApiException(StatusCodes.Status404NotFound,
                $"the model '{id}' is not served here; this server serves '{model.Id}' (GET /v1/models lists it)",
                ApiException.InvalidRequest, "model", "model_not_found");
        }
    }

    /// <summary>
    /// Tokens to generate. The prompt must leave room for at least one token; an explicit
    /// <paramref name="requested"/> must fit with the prompt; otherwise <paramref name="fallback"/> (or the
    /// rest of the context when null) is cut to what fits.
    /// </summary>
    public static int MaxNewTokens(ServedModel model, int promptTokens, string promptParam, long? requested, string requestedParam, int? fallback)
    {
        var context = model.ContextLength;
        if (promptTokens >= context)
        {
            throw ApiException.BadRequest(promptParam,
                $"the prompt is {promptTokens} tokens but the context of model '{model.Id}' is {context} tokens for prompt and output together; shorten the prompt to at most {context - 1} tokens",
                "context_length_exceeded");
        }
        var room = context - promptTokens;
        if (requested is long wanted)
        {
            if (wanted > room)
            {
                throw ApiException.BadRequest(requestedParam,
                    $"the prompt ({promptTokens} tokens) plus '{requestedParam}' ({wanted}) is {promptTokens + wanted} tokens, more than the context of model '{model.Id}' ({context} tokens); set '{requestedParam}' to at most {room} or shorten the prompt",
                    "context_length_exceeded");
            }
            return (int)wanted;
        }
        return fallback is int value ? Math.Min(value, room) : room;
    }

    /// <summary>The seed; a 64-bit value is folded into 32 bits, none gives a fresh random one.</summary>
    public static int Seed(RequestFields fields)
    {
        var seed = fields.Integer("seed", _ => true, "an integer");
        return seed is long s ? (int)(s ^ (s >> 32)) : Random.Shared.Next();
    }

    /// <summary>Checks the options as the sampler will; what slipped past the field checks is still a 400.</summary>
    public static GenerationOptions Validated(GenerationOptions options)
    {
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw ApiException.BadRequest(null, e.Message);
        }
        return options;
    }

    /// <summary>Refuses a field that is present with a value other than its no-op default.</summary>
    public static void Unsupported(bool present, string param, string advice)
    {
        if (present)
        {
            throw ApiException.BadRequest(param, $"'{param}' is not supported by this server; {advice}", "unsupported_parameter");
        }
    }
}
