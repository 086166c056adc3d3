using Pollen.Model.Generation;

namespace Pollen.Node.Api;

/// <summary>A validated request: prompt ids within the context, options with the token budget resolved.</summary>
/// <param name="PromptIds">The prompt's token ids.</param>
/// <param name="Options">What to generate.</param>
/// <param name="Stream">Answer as server-sent events.</param>
/// <param name="IncludeUsage">Streamed: end with a chunk carrying the usage counts (<c>stream_options.include_usage</c>).</param>
internal sealed record GenerationRequest(int[] PromptIds, GenerationOptions Options, bool Stream = false, bool IncludeUsage = false);
