using System.Text.Json.Nodes;

namespace Pollen.Model.Config;

/// <summary>
/// RoPE frequency scaling as in Hugging Face <c>rope_scaling</c>: "linear" divides positions by
/// <see cref="Factor"/>; "llama3" (Llama 3.1+) rescales low frequencies and keeps high ones.
/// </summary>
public sealed record RopeScaling
{
    /// <summary><c>rope_type</c> (or legacy <c>type</c>): "linear" or "llama3".</summary>
    public string Type { get; init; } = "linear";

    /// <summary><c>factor</c>.</summary>
    public double Factor { get; init; } = 1.0;

    /// <summary><c>low_freq_factor</c> (llama3).</summary>
    public double LowFreqFactor { get; init; } = 1.0;

    /// <summary><c>high_freq_factor</c> (llama3).</summary>
    public double HighFreqFactor { get; init; } = 4.0;

    /// <summary><c>original_max_position_embeddings</c> (llama3).</summary>
    public int OriginalMaxPositionEmbeddings { get; init; } = 8192;

    internal static RopeScaling? Read(ConfigReader reader)
    {
        var obj = reader.Object("rope_scaling");
        if (obj is null)
        {
            return null;
        }
        var inner = new ConfigReader(obj);
        var type = inner.String("rope_type", inner.String("type", "default"));
        if (type == "default")
        {
            return null;
        }
        if (type is not ("linear" or "llama3"))
        {
            throw new ModelConfigException("rope_scaling", $"rope_type '{type}' is not supported (supported: linear, llama3)");
        }
        var scaling = new RopeScaling
        {
            Type = type,
            Factor = inner.Double("factor", 1.0),
            LowFreqFactor = inner.Double("low_freq_factor", 1.0),
            HighFreqFactor = inner.Double("high_freq_factor", 4.0),
            OriginalMaxPositionEmbeddings = inner.Int("original_max_position_embeddings", 8192),
        };
        scaling.Validate();
        return scaling;
    }

    internal void Validate()
    {
        if (!(Factor > 0))
        {
            throw new ModelConfigException("rope_scaling", $"factor {Factor} must be positive");
        }
        if (Type == "llama3" && !(HighFreqFactor > LowFreqFactor && LowFreqFactor > 0 && OriginalMaxPositionEmbeddings > 0))
        {
            throw new ModelConfigException("rope_scaling", "llama3 scaling needs high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0");
        }
    }

    internal JsonObject ToJson() => new()
    {
        ["rope_type"] = Type,
        ["factor"] = Factor,
        ["low_freq_factor"] = LowFreqFactor,
        ["high_freq_factor"] = HighFreqFactor,
        ["original_max_position_embeddings"] = OriginalMaxPositionEmbeddings,
    };

    /// <summary>Applies the scaling to RoPE inverse frequencies (radians per position).</summary>
    public double[] Apply(double[] invFreq)
    {
        var result = new double[invFreq.Length];
        for (var i = 0; i < invFreq.Length; i++)
        {
            var f = invFreq[i];
            if (Type == "linear")
            {
                result[i] = f / Factor;
                continue;
            }
            // llama3: wavelengths longer than old_context/low_freq_factor are scaled, shorter than
            // old_context/high_freq_factor kept, and the band between interpolated smoothly.
            var wavelength = 2 * Math.PI / f;
            var lowWavelen = OriginalMaxPositionEmbeddings / LowFreqFactor;
            var highWavelen = OriginalMaxPositionEmbeddings / HighFreqFactor;
            if (wavelength < highWavelen)
            {
                result[i] = f;
            }
            else if (wavelength > lowWavelen)
            {
                result[i] = f / Factor;
            }
            else
            {
                var smooth = ((OriginalMaxPositionEmbeddings / wavelength) - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
                result[i] = ((1 - smooth) * f / Factor) + (smooth * f);
            }
        }
        return result;
    }
}
