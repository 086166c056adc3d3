namespace Pollen.Training.Data;

// The six story arcs. Core sentences carry the plot; optional ones are dropped when a story runs long.
public static partial class SyntheticCorpus
{
    private sealed partial class StoryWriter
    {
        private void LostObject(Character hero)
        {
            var toy = Pick(Toys);
            var color = Pick(Colors);
            var adult = Pick(Adults);
            var grownUp = $"{hero.Pos} {adult.Noun}";
            Core(_rng.Next(3) switch
            {
                0 => $"{Pick(Openers)} {hero.Name} could not find {hero.Pos} {color} {toy}.",
                1 => $"{Pick(Openers)} {hero.Name} looked for {hero.Pos} {color} {toy}, but it was gone.",
                _ => $"{Pick(Openers)} {hero.Name} saw that {hero.Pos} {color} {toy} was missing.",
            });
            Maybe(0.6, Chance(0.5)
                ? $"{Cap(hero.Sub)} felt very {Pick(SadWords)}."
                : $"{hero.Name} was so {Pick(SadWords)} that {hero.Sub} began to cry.");
            Core(Chance(0.5)
                ? Say(hero.Name, $"Where is my {toy}?")
                : $"{hero.Name} asked {grownUp}, \"Have you seen my {toy}?\"");
            Maybe(0.7, Chance(0.5)
                ? Say(grownUp, "Let's look for it together.", reply: true)
                : Say(grownUp, $"Don't worry, {hero.Name}, we will find it.", reply: true));
            Maybe(0.7, $"{Pick(Connectives)} they looked under the {Pick(SearchSpots)} and behind the {Pick(SearchSpots)}.");
            Maybe(0.4, $"It was not in the {Pick(Places)}, and it was not under the {Pick(SearchSpots)}.");
            var spot = Pick(HidingSpots);
            if (Chance(0.5))
            {
                Core($"At last, {hero.Name} found {hero.Pos} {toy} {spot}.");
            }
            else
            {
                Core($"Finally, {hero.Sub} saw something {color} {spot}.");
                Core($"It was {hero.Pos} {toy}!");
            }

            Maybe(0.4, $"A playful {Pick(AnimalKinds)} had carried it there.");
            Maybe(0.6, Chance(0.5)
                ? $"{hero.Name} hugged {hero.Pos} {toy} and felt {Pick(HappyWords)} again."
                : Say(hero.Name, $"Thank you for helping me, {adult.Address}!"));
            Maybe(0.3, $"From then on, {hero.Name} always put {hero.Pos} {toy} back in its place.");
        }

        private void NewFriend(Character hero)
        {
            var friend = NewCharacter(hero);
            var (_, did, where) = Pick(Activities);
            Core($"{Pick(Openers)} {hero.Name} {did} {Pick(where)}.");
            Core($"There {hero.Sub} saw {A($"{Pick(CharacterAdjectives)} {friend.Kind}")} sitting alone {Pick(Landmarks)}.");
            Maybe(0.5, $"The {friend.Kind} looked {Pick(SadWords)}.");
            Maybe(0.6, Say(hero.Sub, $"Hello, my name is {hero.Name}."));
            Core(Say(hero.Name, "Do you want to play with me?"));
            Core(Chance(0.5)
                ? Say($"the {friend.Kind}", $"Yes, I would love to, and my name is {friend.Name}.", reply: true)
                : $"The {friend.Kind} smiled and said, \"My name is {friend.Name}, and I would love to play!\"");
            Core($"{hero.Name} and {friend.Name} {Pick(FriendPlay)} until the sun went down.");
            Maybe(0.5, $"{Cap(friend.Sub)} had never had so much fun before.");
            Maybe(0.5, Say(friend.Name, $"Will you come back tomorrow, {hero.Name}?"));
            Maybe(0.6, $"From that day on, {hero.Name} and {friend.Name} were best friends.");
        }

        private void Storm(Character hero)
        {
            var adult = Pick(Adults);
            var grownUp = $"{hero.Pos} {adult.Noun}";
            Core(Chance(0.5)
                ? "One day, the sky turned dark and the wind began to blow."
                : "One afternoon, big gray clouds covered the sky.");
            Maybe(0.7, "Soon, rain began to fall and thunder boomed.");
            Core(Chance(0.5)
                ? $"{hero.Name} felt {Pick(ScaredWords)} and hid under {hero.Pos} blanket."
                : $"{hero.Name} was {Pick(ScaredWords)} because of the loud thunder.");
            Maybe(0.5, Say(hero.Sub, $"{adult.Address}, I am {Pick(ScaredWords)}!"));
            Core($"{Cap(grownUp)} gave {hero.Obj} a big hug and said, \"Do not be afraid, the storm will pass.\"");
            Maybe(0.6, $"They sat by the window and {Pick(StormComforts)}.");
            Core($"After a while, the rain stopped and the sun came out.");
            Maybe(0.6, $"{hero.Name} looked outside and saw a beautiful rainbow over the {Pick(Places)}.");
            Maybe(0.5, Say(hero.Name, "I am not scared anymore!"));
            Maybe(0.4, $"Then {hero.Sub} ran outside to splash in the puddles.");
        }

        private void Birthday(Character hero)
        {
            var adult = Pick(Adults);
            var first = NewCharacter(hero);
            var second = NewCharacter(hero);
            Core(Chance(0.5)
                ? $"It was {hero.Name}'s birthday, and {hero.Sub} was turning {Pick(Ages)}."
                : $"Today was a special day, because it was {hero.Name}'s birthday.");
            Maybe(0.7, $"{Cap(hero.Pos)} {adult.Noun} baked a big {Pick(CakeFlavors)} cake.");
            Core($"All of {hero.Pos} friends came to the party in the {Pick(PartyPlaces)}.");
            Maybe(0.6, $"{first.Name} brought {A($"{Pick(Colors)} {Pick(Toys)}")}, and {second.Name} brought {A(Pick(Toys))}.");
            Core($"\"Happy birthday, {hero.Name}!\" shouted {hero.Pos} friends.");
            Maybe(0.6, $"{hero.Name} made a wish and blew out the candles.");
            Maybe(0.6, $"They ate cake and {Pick(Foods)} and played {Pick(Games)}.");
            Core(Say(hero.Name, "This is the best birthday ever!"));
            Maybe(0.4, $"That night, {hero.Name} went to bed with a big smile.");
        }

        private void Sharing(Character hero)
        {
            var food = Pick(Foods);
            var adult = Pick(Adults);
            var friend = NewCharacter(hero);
            Core($"{Pick(Openers)} {hero.Name}'s {adult.Noun} gave {hero.Obj} a bag of {food}.");
            Core($"{Cap(hero.Sub)} wanted to eat them all by {hero.Self}.");
            Core($"Then {hero.Sub} saw {friend.Name}, {A($"{Pick(CharacterAdjectives)} {friend.Kind}")}, who looked hungry.");
            Maybe(0.5, $"{friend.Name} had nothing to eat all day.");
            Maybe(0.5, $"{hero.Name} thought for a moment.");
            Core(Say(hero.Name, $"Would you like some of my {food}?"));
            Maybe(0.6, Say(friend.Name, "Thank you, you are very kind.", reply: true));
            Core($"They sat under {A(Pick(Trees))} tree and ate the {food} together.");
            Maybe(0.6, Chance(0.5)
                ? $"{hero.Name} learned that sharing makes everyone {Pick(HappyWords)}."
                : $"Sharing felt even better than eating all the {food} alone.");
        }

        private void Helping(Character hero)
        {
            var (animal, hurt, leaves) = Pick(HurtAnimals);
            var adult = Pick(Adults);
            Core($"{Pick(Openers)} while {hero.Name} was walking {Pick(WalkPlaces)}, {hero.Sub} heard a small sound.");
            Core($"It was {A(animal)} with a hurt {hurt}.");
            Maybe(0.6, Say(hero.Name, $"Oh no, you poor little {animal}!"));
            Core($"{hero.Name} carefully picked it up and carried it home.");
            Maybe(0.6, $"{Cap(hero.Pos)} {adult.Noun} helped {hero.Obj} make a soft bed in a box.");
            Maybe(0.6, $"Every day, {hero.Name} gave the {animal} {Pick(Foods)} and water.");
            Core($"After a few days, the {animal} was strong again.");
            Core($"{hero.Name} took it outside, and the {animal} {leaves}.");
            Maybe(0.4, $"Sometimes the {animal} came back to visit {hero.Name}.");
        }
    }
}
