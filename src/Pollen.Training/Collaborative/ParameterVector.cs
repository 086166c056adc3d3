using System.Security.Cryptography;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative;

/// <summary>
/// A fixed, named layout of a model's parameters as one flat float32 vector: what peers average
/// slice by slice, and what a state download transfers. Every peer builds the layout from the same
/// config, so offsets agree without being sent; <see cref="LayoutHash"/> lets peers check that.
/// </summary>
public sealed class ParameterVector
{
    private readonly (string Name, Parameter Param, long Offset, long Count)[] _entries;

    /// <summary>Creates the layout of <paramref name="parameters"/> in the given order.</summary>
    public ParameterVector(IEnumerable<(string Name, Parameter Param)> parameters)
    {
        long offset = 0;
        var entries = new List<(string, Parameter, long, long)>();
        foreach (var (name, param) in parameters)
        {
            entries.Add((name, param, offset, param.numel()));
            offset += param.numel();
        }
        _entries = [.. entries];
        Length = offset;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, param, _, _) in _entries)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes($"{name}:{string.Join('x', param.shape)};"));
        }
        LayoutHash = Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Elements in the flat vector.</summary>
    public long Length { get; }

    /// <summary>SHA-256 of the names and shapes, in order.</summary>
    public string LayoutHash { get; }

    /// <summary>A float32 copy of all parameters, flattened in layout order (owned by the caller).</summary>
    public Tensor Gather()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        return cat(_entries.Select(e => e.Param.detach().reshape(-1).to(float32)).ToArray(), 0).MoveToOuterDisposeScope();
    }

    /// <summary>Overwrites every parameter from a flat vector in layout order.</summary>
    public void Scatter(Tensor flat)
    {
        if (flat.numel() != Length)
        {
            throw new ArgumentException($"a vector of {flat.numel()} elements does not fit a layout of {Length}", nameof(flat));
        }
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (_, param, offset, count) in _entries)
        {
            param.copy_(flat.narrow(0, offset, count).view(param.shape).to(param.dtype));
        }
    }

    /// <summary>SHA-256 of the parameters' bytes in layout order: equal on peers that hold equal weights.</summary>
    public string ContentHash()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var scope = NewDisposeScope();
        foreach (var (_, param, _, _) in _entries)
        {
            var contiguous = param.detach().contiguous();
            sha.AppendData(contiguous.bytes);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
