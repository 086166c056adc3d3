namespace Pollen.Node.Hosting;

/// <summary>
/// <c>pollen node --reset</c>: deletes this node's checkpoints and round state
/// (<see cref="NodeOptions.StateDirectory"/>) and nothing else — not the identity key, not other files in
/// the home directory, not another node's state. Asks first on an interactive terminal; without one it
/// needs <c>--yes</c>, so a script never wipes a node by accident.
/// </summary>
public static class NodeReset
{
    /// <summary>
    /// Deletes the state when confirmed. Returns false (nothing deleted) when the user declined or no
    /// confirmation was possible; the reason has been written to <paramref name="output"/>.
    /// </summary>
    /// <param name="options">The node's options (home directory, <c>--yes</c>).</param>
    /// <param name="input">Where the answer is read from (stdin).</param>
    /// <param name="interactive">Whether <paramref name="input"/> is a terminal a person can answer on.</param>
    /// <param name="output">Where the question and the outcome go.</param>
    public static bool Run(NodeOptions options, TextReader input, bool interactive, TextWriter output)
    {
        var directory = Path.GetFullPath(options.StateDirectory);
        if (!Directory.Exists(directory))
        {
            output.WriteLine($"reset: {directory} does not exist; nothing to delete");
            return true;
        }
        if (!options.Yes)
        {
            if (!interactive)
            {
                output.WriteLine($"reset: refusing to delete {directory} without confirmation; stdin is not a terminal, so add --yes");
                return false;
            }
            output.Write($"delete this node's checkpoints and state in {directory}? type 'yes' to confirm: ");
            output.Flush();
            if (!string.Equals(input.ReadLine()?.Trim(), "yes", StringComparison.OrdinalIgnoreCase))
            {
                output.WriteLine("reset: not confirmed; nothing deleted");
                return false;
            }
        }
        Directory.Delete(directory, recursive: true);
        output.WriteLine($"reset: deleted {directory}");
        return true;
    }
}
