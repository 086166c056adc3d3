using Microsoft.AspNetCore.Http;

namespace Pollen.Node.Api;

/// <summary>
/// A request the API refuses, carried to the response as OpenAI's error shape
/// <c>{"error": {"message", "type", "param", "code"}}</c>. The message says what to change.
/// </summary>
public sealed class ApiException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ApiException(int statusCode, string message, string type, string? param = null, string? code = null)
        : base(message)
    {
        StatusCode = statusCode;
        Type = type;
        Param = param;
        Code = code;
    }

    /// <summary>Creates a 400 invalid_request_error.</summary>
    public ApiException()
        : this(StatusCodes.Status400BadRequest, "invalid request", InvalidRequest)
    {
    }

    /// <summary>Creates a 400 invalid_request_error.</summary>
    public ApiException(string message)
        : this(StatusCodes.Status400BadRequest, message, InvalidRequest)
    {
    }

    /// <summary>Creates a 400 invalid_request_error.</summary>
    public ApiException(string message, Exception innerException)
        : base(message, innerException)
    {
        StatusCode = StatusCodes.Status400BadRequest;
        Type = InvalidRequest;
    }

    /// <summary>OpenAI's type for a request the caller must change.</summary>
    public const string InvalidRequest = "invalid_request_error";

    /// <summary>The HTTP status.</summary>
    public int StatusCode { get; }

    /// <summary>OpenAI's error type (<c>invalid_request_error</c>, <c>service_unavailable_error</c>, …).</summary>
    public string Type { get; }

    /// <summary>The request field at fault, when one is.</summary>
    public string? Param { get; }

    /// <summary>A machine-readable code (<c>model_not_found</c>, <c>context_length_exceeded</c>, …), when one applies.</summary>
    public string? Code { get; }

    /// <summary>400: the field <paramref name="param"/> must change as <paramref name="message"/> says.</summary>
    public static ApiException BadRequest(string? param, string message, string? code = null) =>
        new(StatusCodes.Status400BadRequest, message, InvalidRequest, param, code);
}
