using System.Security.Cryptography;
using Grpc.Core;
using Grpc.Net.Client;
using Pollen.Training.Protos;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative.Network;

/// <summary>
/// Downloading a run's state from a peer, for a peer that starts late or fell behind. What arrives is
/// untrusted: the header must describe this model's layout, the sizes must add up exactly, the values
/// must be finite, and the parameters must hash to what the run's signed progress entries say.
/// </summary>
public static class StateTransfer
{
    /// <summary>Largest data chunk of a transfer.</summary>
    public const int ChunkBytes = 1 << 20;

    /// <summary>Hex SHA-256 (as <see cref="ParameterVector.ContentHash"/> for a float32 model).</summary>
    public static string Hash(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>
    /// Downloads <paramref name="runId"/>'s state from the peer behind <paramref name="channel"/> and checks it
    /// against <paramref name="layout"/>, <paramref name="elements"/> and <paramref name="expectedHash"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">What arrived is not the expected state; the message says how.</exception>
    public static async Task<DilocoState> DownloadAsync(GrpcChannel channel, string runId, string layout, long elements, string expectedHash, TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        var client = new Averaging.AveragingClient(channel);
        using var call = client.GetState(new StateRequest { RunId = runId }, deadline: DateTime.UtcNow + timeout, cancellationToken: cancellationToken);
        if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false) || call.ResponseStream.Current.Header is not { } header)
        {
            throw new InvalidDataException("the state transfer did not start with a header");
        }
        if (header.Layout != layout || header.Elements != elements)
        {
            throw new InvalidDataException($"the peer's model has layout {header.Layout} with {header.Elements} values; ours {layout} with {elements}");
        }
        if (header.ParameterHash != expectedHash)
        {
            throw new InvalidDataException($"the peer offers parameters {header.ParameterHash}, not the {expectedHash} the run's progress names");
        }
        if (header.Rounds < 0 || header.OuterSteps < 0)
        {
            throw new InvalidDataException("the state's round or step count is negative");
        }
        var total = elements * 4 * (header.HasMomentum ? 2 : 1);
        var buffer = new byte[total];
        long offset = 0;
        while (await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            var data = call.ResponseStream.Current.Data;
            if (data.Length > ChunkBytes || offset + data.Length > total)
            {
                throw new InvalidDataException($"the state transfer sent more than the {total} bytes its header announced");
            }
            data.Span.CopyTo(buffer.AsSpan((int)offset));
            offset += data.Length;
        }
        if (offset != total)
        {
            throw new InvalidDataException($"the state transfer ended after {offset} of {total} bytes");
        }
        var parameterBytes = buffer.AsSpan(0, (int)(elements * 4));
        if (Hash(parameterBytes) != expectedHash)
        {
            throw new InvalidDataException("the received parameters do not hash to what the header and the run's progress say");
        }
        var parameters = DeltaCodec.Decode(parameterBytes, DeltaCompression.F32, elements);
        Tensor? momentum = null;
        try
        {
            if (header.HasMomentum)
            {
                momentum = DeltaCodec.Decode(buffer.AsSpan((int)(elements * 4)), DeltaCompression.F32, elements);
            }
        }
        catch
        {
            parameters.Dispose();
            throw;
        }
        return new DilocoState(header.Rounds, header.OuterSteps, parameters, momentum, header.Layout);
    }
}
