using Pollen.Model;
using Pollen.Model.Tokenizers;

namespace Pollen.Node.Api;

/// <summary>
/// The model the API serves: any <see cref="ICausalLM"/> (a local <c>Transformer</c>, or a
/// <c>SwarmModel</c> whose blocks run on servers) under the id clients name it by. The API does not own
/// the model: the caller disposes it after the server has stopped.
/// </summary>
public sealed class ServedModel
{
    /// <summary>Creates the description; <paramref name="tokenizer"/> null means text cannot be served, only token ids.</summary>
    public ServedModel(string id, ICausalLM model, ITokenizer? tokenizer)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        ArgumentNullException.ThrowIfNull(model);
        Id = id;
        Model = model;
        Tokenizer = tokenizer;
    }

    /// <summary>The id in requests' <c>model</c> field and in <c>GET /v1/models</c>.</summary>
    public string Id { get; }

    /// <summary>The model.</summary>
    public ICausalLM Model { get; }

    /// <summary>The tokenizer, or null.</summary>
    public ITokenizer? Tokenizer { get; }

    /// <summary>The model's context in tokens (<c>max_position_embeddings</c>): prompt plus output.</summary>
    public int ContextLength => Model.Config.MaxPositionEmbeddings;

    /// <summary>
    /// Encodes prompt text. Hugging Face tokenizers that add BOS (Llama) get it first, as in training;
    /// byte-level Pollen models are trained without.
    /// </summary>
    /// <exception cref="ApiException">There is no tokenizer, or the text encodes to nothing.</exception>
    internal int[] Encode(string text, string param)
    {
        if (Tokenizer is null)
        {
            throw ApiException.BadRequest(param, $"model '{Id}' has no tokenizer, so it cannot read text; send the prompt as an array of token ids to /v1/completions");
        }
        var ids = Tokenizer.Encode(text);
        if (Tokenizer is HfTokenizer { AddBosToken: true, BosId: int bos })
        {
            ids = [bos, .. ids];
        }
        return ids.Length > 0 ? ids : throw ApiException.BadRequest(param, $"'{param}' is empty; give at least one character of text");
    }

    /// <summary>Decodes ids (empty text without a tokenizer).</summary>
    internal string Decode(ReadOnlySpan<int> ids) => Tokenizer?.Decode(ids) ?? "";
}
