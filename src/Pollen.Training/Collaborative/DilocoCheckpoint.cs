using System.Text.Json.Nodes;
using Pollen.Model.Checkpoints;
using Pollen.Model.Llama;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative;

/// <summary>
/// A DiLoCo peer's checkpoint: the model at a round boundary (θ_start), the outer momentum and the round
/// state, each file written atomically and the state file last, so a cut save is detected on resume (the
/// state's parameter hash does not match the model) and the peer then catches up from the swarm.
/// </summary>
public static class DilocoCheckpoint
{
    /// <summary>File (next to the model) holding the round state.</summary>
    public const string StateFile = "diloco_state.json";

    /// <summary>File holding the outer momentum (raw little-endian float32).</summary>
    public const string MomentumFile = "outer_momentum.f32";

    /// <summary>Whether <paramref name="directory"/> holds a round state.</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, StateFile));

    /// <summary>
    /// Saves <paramref name="peer"/> at the start of its current round: the model's parameters are set back
    /// to θ_start first (the inner steps of an unfinished round are dropped), so the files describe exactly
    /// round <see cref="DilocoPeer.Round"/>.
    /// </summary>
    public static void Save(DilocoPeer peer, Transformer model, string directory, string runId)
    {
        using (var state = peer.SnapshotState())
        {
            peer.LoadState(state); // back to θ_start of this round
        }
        using var snapshot = peer.SnapshotState();
        Directory.CreateDirectory(directory);
        ModelCheckpoint.Save(directory, model);
        if (snapshot.Momentum is { } momentum)
        {
            AtomicFile.WriteAllBytes(Path.Combine(directory, MomentumFile), DeltaCodec.Encode(momentum, DeltaCompression.F32));
        }
        AtomicFile.WriteAllText(Path.Combine(directory, StateFile), new JsonObject
        {
            ["run_id"] = runId,
            ["rounds"] = snapshot.Round,
            ["outer_steps"] = snapshot.OuterSteps,
            ["parameter_hash"] = peer.ParameterHash,
            ["has_momentum"] = snapshot.Momentum is not null,
        }.ToJsonString());
    }

    /// <summary>
    /// Takes over the round state saved in <paramref name="directory"/> (the weights are already loaded
    /// into the peer's model). Returns false when the files do not match (an interrupted save).
    /// </summary>
    /// <exception cref="ArgumentException">The checkpoint belongs to another run.</exception>
    public static bool TryResume(DilocoPeer peer, string directory, string runId)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, StateFile)))!.AsObject();
        if ((string?)json["run_id"] != runId)
        {
            throw new ArgumentException($"{directory} is a checkpoint of run '{json["run_id"]}', not '{runId}'; start over in another directory");
        }
        if (peer.ParameterHash != (string?)json["parameter_hash"])
        {
            return false;
        }
        Tensor? momentum = null;
        if ((bool?)json["has_momentum"] == true)
        {
            momentum = DeltaCodec.Decode(File.ReadAllBytes(Path.Combine(directory, MomentumFile)), DeltaCompression.F32, peer.Length);
        }
        using var state = peer.SnapshotState() with { Round = (long)json["rounds"]!, OuterSteps = (long)json["outer_steps"]!, Momentum = momentum };
        peer.LoadState(state);
        return true;
    }
}
