using System.Text;

namespace Pollen.Node.Api;

/// <summary>
/// Turns chat messages into one plain-text prompt. Byte-level and base models have no chat template, so
/// the conversation is written the way dialogue appears in ordinary text, one turn per line, and the
/// model continues after a final <c>Assistant:</c>:
/// <code>
/// System: You are terse.
/// User: Hello
/// Assistant: Hi.
/// User: Name a colour.
/// Assistant:
/// </code>
/// The reply ends where the model starts the user's next turn (<see cref="UserTurn"/> is added to the
/// stop strings, and is not returned), at an end-of-sequence token, or at the token budget. Leading
/// whitespace of the reply is dropped (the model usually writes the space after the colon).
/// </summary>
public static class ChatPrompt
{
    /// <summary>Who speaks.</summary>
    public enum Role
    {
        /// <summary>Instructions (OpenAI roles <c>system</c> and <c>developer</c>).</summary>
        System,

        /// <summary>The user.</summary>
        User,

        /// <summary>The model.</summary>
        Assistant,
    }

    /// <summary>One turn.</summary>
    /// <param name="Speaker">Who speaks.</param>
    /// <param name="Content">What is said.</param>
    public sealed record Message(Role Speaker, string Content);

    /// <summary>The stop string that ends a reply: the start of the user's next turn.</summary>
    public const string UserTurn = "\nUser:";

    /// <summary>The prompt for <paramref name="messages"/>, ending with <c>Assistant:</c>.</summary>
    public static string Format(IEnumerable<Message> messages)
    {
        var text = new StringBuilder();
        foreach (var message in messages)
        {
            text.Append(message.Speaker switch
            {
                Role.System => "System: ",
                Role.User => "User: ",
                _ => "Assistant: ",
            });
            text.Append(message.Content.Trim()).Append('\n');
        }
        return text.Append("Assistant:").ToString();
    }
}
