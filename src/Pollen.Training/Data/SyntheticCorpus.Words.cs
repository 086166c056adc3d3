namespace Pollen.Training.Data;

// The vocabulary of the story grammar. Every entry is plain ASCII so that one character is one byte.
public static partial class SyntheticCorpus
{
    private static readonly string[] GirlNames =
    [
        "Lily", "Mia", "Emma", "Sara", "Lucy", "Anna", "Zoe", "Ella", "Amy", "Rose",
        "Grace", "Chloe", "Ruby", "Daisy", "Molly", "Sophie", "Ava", "Nora", "Ivy", "Lola",
        "Maya", "Hannah", "Kate", "Julia", "Alice", "Jenny", "Olivia", "Clara", "Poppy", "Bella",
    ];

    private static readonly string[] BoyNames =
    [
        "Tom", "Ben", "Max", "Sam", "Leo", "Jack", "Tim", "Jake", "Finn", "Luke",
        "Oliver", "Noah", "Henry", "Oscar", "Theo", "Alex", "Billy", "Danny", "Joe", "Ryan",
        "Adam", "Eli", "Owen", "Milo", "Jonah", "Peter", "Hugo", "Toby", "Felix", "Charlie",
    ];

    private static readonly string[] AnimalKinds =
    [
        "cat", "dog", "bunny", "bear", "bird", "fox", "duck", "frog", "mouse", "puppy",
        "kitten", "owl", "squirrel", "turtle", "pig", "lamb", "pony", "elephant", "lion", "monkey",
        "penguin", "deer", "hedgehog", "goat", "cow", "tiger", "giraffe", "panda", "dragon", "robot",
    ];

    private static readonly string[] CharacterAdjectives =
    [
        "little", "small", "kind", "brave", "shy", "happy", "curious", "clever", "friendly", "funny",
        "gentle", "playful", "quiet", "silly", "sleepy", "cheerful", "young", "sweet", "smart", "busy",
        "careful", "helpful", "bright", "tiny", "proud",
    ];

    private static readonly string[] Colors =
    [
        "red", "blue", "green", "yellow", "pink", "purple", "orange", "white", "black", "brown",
        "golden", "silver", "shiny", "striped", "spotted",
    ];

    private static readonly string[] Toys =
    [
        "ball", "kite", "teddy bear", "doll", "toy car", "toy train", "book", "hat", "scarf", "blanket",
        "drum", "whistle", "puzzle", "music box", "rubber duck", "boat", "robot", "bucket", "shell", "necklace",
        "umbrella", "backpack", "marble", "cup", "balloon", "wooden horse", "bell", "spinning top", "crown", "jump rope",
    ];

    // A place to lose something in, with its preposition.
    private static readonly string[] HidingSpots =
    [
        "under the bed", "behind the couch", "in the toy box", "under the table", "behind the door",
        "under a pile of leaves", "inside an old boot", "on top of the shelf", "in the dog's basket",
        "behind the big tree", "under the pillow", "in the sandbox", "next to the flower pot",
        "in the laundry basket", "under the stairs", "in the kitchen drawer", "behind the curtains",
    ];

    private static readonly string[] SearchSpots =
    [
        "bed", "couch", "table", "chair", "door", "rug", "stairs", "shelf", "box", "bush",
        "fence", "swing", "bench", "car", "tree", "cupboard", "window",
    ];

    private static readonly string[] Places =
    [
        "park", "garden", "forest", "beach", "meadow", "farm", "hill", "playground", "backyard", "field",
        "woods", "lake", "pond", "river", "village", "zoo", "orchard", "valley",
    ];

    private static readonly string[] WalkPlaces =
    [
        "in the park", "in the forest", "on the beach", "in the meadow", "by the river", "near the farm",
        "on the hill", "through the woods", "in the garden", "by the lake", "in the orchard", "along the road",
    ];

    private static readonly string[] Traits =
    [
        "kind", "brave", "cheerful", "friendly", "helpful", "gentle", "curious", "playful", "polite", "clever",
        "honest", "patient",
    ];

    private static readonly string[] Homes =
    [
        "in a small house near the woods", "on a big farm", "in a little town by the sea",
        "in a cozy house with a red door", "in a busy city", "near a quiet lake",
        "at the edge of a big forest", "in a yellow house on a hill", "in a tiny village",
    ];

    private static readonly string[] Landmarks =
    [
        "by the pond", "under a big tree", "near the fence", "on a rock", "next to the swings",
        "behind a bush", "by the river", "on a bench", "near the old well", "at the top of the hill",
    ];

    private static readonly string[] Foods =
    [
        "cookies", "apples", "cherries", "grapes", "berries", "sandwiches", "candies", "strawberries",
        "muffins", "carrots", "nuts", "pancakes", "cupcakes", "oranges", "bananas", "plums",
    ];

    private static readonly string[] PartyPlaces = ["garden", "park", "backyard", "house"];

    private static readonly string[] CakeFlavors = ["chocolate", "strawberry", "lemon", "vanilla", "carrot", "banana", "honey"];

    private static readonly string[] Games = ["tag", "hide and seek", "catch", "musical chairs", "leapfrog", "with balloons"];

    private static readonly string[] Ages = ["three", "four", "five", "six", "seven", "eight"];

    private static readonly string[] Trees = ["oak", "apple", "willow", "pine", "maple", "cherry"];

    private static readonly string[] SadWords = ["sad", "upset", "worried", "unhappy", "gloomy"];

    private static readonly string[] HappyWords = ["happy", "glad", "joyful", "excited", "proud", "thankful"];

    private static readonly string[] ScaredWords = ["scared", "afraid", "frightened", "nervous"];

    // (noun, how the hero addresses them, is female)
    private static readonly (string Noun, string Address, bool Female)[] Adults =
    [
        ("mom", "Mom", true), ("dad", "Dad", false), ("grandma", "Grandma", true),
        ("grandpa", "Grandpa", false), ("big sister", "Sis", true), ("big brother", "Bro", false),
        ("aunt", "Auntie", true), ("uncle", "Uncle", false),
    ];

    // Things to do, in base and past form, with the places (and prepositions) they fit.
    private static readonly (string Base, string Past, string[] Where)[] Activities =
    [
        ("pick flowers", "picked flowers", ["in the garden", "in the meadow", "in the field", "in the valley"]),
        ("fly a kite", "flew a kite", ["in the park", "on the hill", "at the beach", "in the field"]),
        ("read books", "read books", ["in the garden", "in the backyard", "in the village square"]),
        ("sing songs", "sang songs", ["in the garden", "in the forest", "in the meadow", "in the woods"]),
        ("draw pictures", "drew pictures", ["in the park", "in the garden", "in the backyard"]),
        ("build castles in the sand", "built castles in the sand", ["at the beach"]),
        ("climb trees", "climbed trees", ["in the forest", "in the woods", "in the orchard", "in the park"]),
        ("run and jump", "ran and jumped", ["in the park", "at the playground", "in the meadow", "in the field"]),
        ("chase butterflies", "chased butterflies", ["in the meadow", "in the garden", "in the field"]),
        ("look at the clouds", "looked at the clouds", ["on the hill", "in the meadow", "in the field"]),
        ("splash in the water", "splashed in the water", ["in the lake", "in the pond", "in the river", "at the beach"]),
        ("ride a bike", "rode a bike", ["in the park", "in the village square", "at the playground"]),
        ("play hide and seek", "played hide and seek", ["in the park", "in the woods", "in the backyard", "at the playground"]),
        ("dance", "danced", ["in the garden", "in the meadow", "in the village square"]),
        ("watch the birds", "watched the birds", ["in the forest", "by the lake", "in the woods", "in the orchard"]),
        ("swim", "swam", ["in the lake", "in the pond", "in the river", "in the sea"]),
        ("collect shiny stones", "collected shiny stones", ["by the river", "at the beach", "on the hill"]),
        ("plant seeds", "planted seeds", ["in the garden", "on the farm", "in the backyard"]),
        ("feed the animals", "fed the animals", ["on the farm", "at the zoo"]),
        ("roll down the hill", "rolled down the hill", ["in the valley", "behind the house"]),
        ("pick apples", "picked apples", ["in the orchard", "on the farm"]),
        ("play on the swings", "played on the swings", ["at the playground", "in the park"]),
    ];

    private static readonly string[] FriendPlay =
    [
        "played tag", "built a big sand castle", "ran up and down the hill", "played hide and seek",
        "looked for shiny stones", "raced to the big tree and back", "made a tower of blocks",
        "jumped in the leaves", "told funny jokes", "drew pictures in the dirt", "played catch",
    ];

    private static readonly string[] StormComforts =
    [
        "drank warm milk", "read a story together", "counted the raindrops on the window",
        "built a fort with pillows", "played a quiet game", "sang soft songs", "made hot soup",
    ];

    // (animal, hurt part, how it leaves)
    private static readonly (string Kind, string Hurt, string Leaves)[] HurtAnimals =
    [
        ("bird", "wing", "flew away into the sky"), ("baby bird", "wing", "flew back to its nest"),
        ("bunny", "paw", "hopped back into the woods"), ("squirrel", "leg", "ran up a tall tree"),
        ("duckling", "foot", "waddled back to the pond"), ("hedgehog", "leg", "walked back into the garden"),
        ("butterfly", "wing", "flew over the flowers"), ("kitten", "paw", "ran off to play"),
    ];

    private static readonly string[] SayVerbs = ["said", "whispered"];

    private static readonly string[] ReplyVerbs = ["said", "replied", "answered"];

    private static readonly string[] AskVerbs = ["asked", "wondered"];

    private static readonly string[] ShoutVerbs = ["shouted", "cried", "yelled", "called"];

    private static readonly string[] Openers = ["One day,", "One morning,", "One afternoon,", "One sunny day,", "Later that week,", "The next day,"];

    private static readonly string[] Connectives = ["Then", "After that,", "Soon", "Later,", "After a while,", "Next,"];

    private static readonly string[] Endings =
    [
        "It was a wonderful day.", "{0} would never forget that day.", "{0} smiled all the way home.",
        "That night, {0} slept with a happy smile.", "And they all lived happily ever after.",
        "It was the best day ever.",
    ];
}
