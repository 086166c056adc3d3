using System.Text;

namespace Pollen.Training.Data;

/// <summary>
/// A built-in, synthetic corpus: short English children's stories ("Once upon a time, there was a little
/// girl named Lily. ...") generated from a small grammar, so training runs on a fresh machine with no
/// download. The text is machine-made, not real writing.
/// </summary>
/// <remarks>
/// Each story has 4 to 12 sentences: an introduction of a named character (a child or an animal), a trait,
/// then one of six arcs (a lost object found, making a friend, a storm, a birthday, sharing, helping a hurt
/// animal) with quoted dialogue, and sometimes an ending. Pronouns and articles agree with the character.
/// The vocabulary is a few hundred words: varied enough that a model must learn structure, regular enough
/// that a tiny model learns it in minutes. Output is plain ASCII (one character is one byte) and depends
/// only on the seed, through <see cref="Random(int)"/>, whose sequence for a given seed is fixed in .NET.
/// </remarks>
public static partial class SyntheticCorpus
{
    /// <summary>Fewest sentences in one story.</summary>
    public const int MinSentences = 4;

    /// <summary>Most sentences in one story.</summary>
    public const int MaxSentences = 12;

    /// <summary>
    /// What <see cref="Generate"/> puts between stories: a line holding only <c>&lt;|endoftext|&gt;</c>, the
    /// separator <see cref="TextCorpus"/> splits <c>.txt</c> files on, so a saved corpus loads back as the
    /// same documents.
    /// </summary>
    public const string Separator = "\n" + TextCorpus.EndOfTextLine + "\n";

    /// <summary>An endless, deterministic sequence of stories for <paramref name="seed"/>.</summary>
    public static IEnumerable<string> Stories(int seed)
    {
        var writer = new StoryWriter(new Random(seed));
        while (true)
        {
            yield return writer.Write();
        }
    }

    /// <summary>
    /// The first stories of <see cref="Stories(int)"/> for <paramref name="seed"/>, as many as it takes for
    /// their text plus one <see cref="Separator"/> between each two to reach <paramref name="targetBytes"/>.
    /// </summary>
    public static IEnumerable<string> Stories(int seed, long targetBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(targetBytes);
        long bytes = 0;
        foreach (var story in Stories(seed))
        {
            if (bytes >= targetBytes)
            {
                yield break;
            }

            bytes += (bytes == 0 ? 0 : Separator.Length) + story.Length;
            yield return story;
        }
    }

    /// <summary>
    /// At least <paramref name="targetBytes"/> bytes of stories (UTF-8, all ASCII) for <paramref name="seed"/>,
    /// joined by <see cref="Separator"/> and ending at a story boundary; about 4 MB takes well under a second.
    /// </summary>
    public static string Generate(int seed, int targetBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(targetBytes);
        var text = new StringBuilder(targetBytes + 2048);
        foreach (var story in Stories(seed, targetBytes))
        {
            if (text.Length > 0)
            {
                text.Append(Separator);
            }

            text.Append(story);
        }

        return text.ToString();
    }

    private sealed record Character(string Name, bool Female, string Kind)
    {
        public string Sub => Female ? "she" : "he";

        public string Obj => Female ? "her" : "him";

        public string Pos => Female ? "her" : "his";

        public string Self => Female ? "herself" : "himself";
    }

    /// <summary>Writes one story at a time as a list of sentences, each exactly one sentence long.</summary>
    private sealed partial class StoryWriter(Random rng)
    {
        private readonly Random _rng = rng;
        private readonly List<(string Text, bool Optional)> _sentences = new(16);

        public string Write()
        {
            _sentences.Clear();
            var hero = NewCharacter(null);
            Introduce(hero);
            switch (_rng.Next(6))
            {
                case 0: LostObject(hero); break;
                case 1: NewFriend(hero); break;
                case 2: Storm(hero); break;
                case 3: Birthday(hero); break;
                case 4: Sharing(hero); break;
                default: Helping(hero); break;
            }

            if (Chance(0.4))
            {
                Optional(Pick(Endings).Replace("{0}", hero.Name, StringComparison.Ordinal));
            }

            // Drop optional sentences (never the first) until the story fits.
            while (_sentences.Count > MaxSentences)
            {
                var optional = _sentences.FindLastIndex(s => s.Optional);
                _sentences.RemoveAt(optional);
            }

            var text = new StringBuilder(1024);
            foreach (var (sentence, _) in _sentences)
            {
                if (text.Length > 0)
                {
                    text.Append(' ');
                }

                text.Append(sentence);
            }

            return text.ToString();
        }

        private void Introduce(Character hero)
        {
            var adjective = Pick(CharacterAdjectives);
            var who = A($"{adjective} {hero.Kind}");
            Core(_rng.Next(4) switch
            {
                0 => $"Once upon a time, there was {who} named {hero.Name}.",
                1 => $"Once upon a time, {Pick(Homes)}, there lived {who} named {hero.Name}.",
                2 => $"There was once {who} called {hero.Name}.",
                _ => $"{hero.Name} was {who} who lived {Pick(Homes)}.",
            });

            var (activity, _, where) = Pick(Activities);
            Maybe(0.85, _rng.Next(3) switch
            {
                0 => $"{Cap(hero.Sub)} loved to {activity} {Pick(where)}.",
                1 => $"Every day, {hero.Sub} liked to {activity} {Pick(where)}.",
                _ => $"{Cap(hero.Sub)} had {A($"{Pick(Colors)} {Pick(Toys)}")} that {hero.Sub} loved very much.",
            });

            if (Chance(0.3))
            {
                Optional($"{Cap(hero.Sub)} was always {Pick(Traits)} and {Pick(HappyWords)}.");
            }
        }

        private Character NewCharacter(Character? other)
        {
            while (true)
            {
                var female = Chance(0.5);
                var name = female ? Pick(GirlNames) : Pick(BoyNames);
                var kind = Chance(0.6) ? (female ? "girl" : "boy") : Pick(AnimalKinds);
                if (other is null || name != other.Name)
                {
                    return new Character(name, female, kind);
                }
            }
        }

        /// <summary>
        /// A line of dialogue in one of several shapes; <paramref name="words"/> ends in . ! or ?, and
        /// <paramref name="reply"/> allows "replied" and "answered".
        /// </summary>
        private string Say(string speaker, string words, bool reply = false)
        {
            // "said she" is avoided, and so is a capitalized name right after a closing ?" or !", so that
            // the speech and its tag always read as one sentence.
            var last = words[^1];
            var verb = last switch
            {
                '?' => Pick(AskVerbs),
                '!' => Pick(ShoutVerbs),
                _ => Pick(reply ? ReplyVerbs : SayVerbs),
            };
            var quoted = last == '.' ? $"\"{words[..^1]},\"" : $"\"{words}\"";
            var pronoun = speaker is "she" or "he";
            var tagFirstAllowed = last == '.' || char.IsLower(speaker[0]);
            return _rng.Next(3) switch
            {
                0 => $"{Cap(speaker)} {verb}, \"{words}\"",
                1 when !pronoun => $"{quoted} {verb} {speaker}.",
                _ when tagFirstAllowed => $"{quoted} {speaker} {verb}.",
                _ => $"{quoted} {verb} {speaker}.",
            };
        }

        private void Core(string sentence) => _sentences.Add((sentence, false));

        private void Optional(string sentence) => _sentences.Add((sentence, true));

        private void Maybe(double probability, string sentence)
        {
            if (Chance(probability))
            {
                Optional(sentence);
            }
        }

        private bool Chance(double probability) => _rng.NextDouble() < probability;

        private T Pick<T>(T[] items) => items[_rng.Next(items.Length)];

        private static string Cap(string text) => string.Concat(char.ToUpperInvariant(text[0]).ToString(), text.AsSpan(1));

        /// <summary>The phrase with "a" or "an" in front.</summary>
        private static string A(string phrase) => ("aeiou".Contains(phrase[0], StringComparison.Ordinal) ? "an " : "a ") + phrase;
    }
}
