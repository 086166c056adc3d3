using Pollen.Cli;

namespace Pollen.Tests.Cli;

public class PoolSpinTests
{
    [Theory]
    [InlineData("serve --model m --threads 1", 2, true)]
    [InlineData("serve --model m --threads=1", 2, true)]
    [InlineData("bench inference --servers 4 --threads 1 --json", 2, true)]
    [InlineData("generate --initial-peers a:1 --threads 3", 8, true)]
    [InlineData("api --threads 1", 2, true)]
    [InlineData("serve --model m", 2, false)] // all cores by default: spinning would take cycles from the math
    [InlineData("serve --model m --threads 2", 2, false)]
    [InlineData("serve --model m --threads x", 2, false)]
    [InlineData("node --threads 1", 2, false)] // training takes the other cores
    [InlineData("bench train-swarm --threads 1", 2, false)]
    [InlineData("", 2, false)]
    public void SpinsOnlyWhenACommandThatDecodesLeavesACoreToTheNetwork(string command, int cores, bool expected) =>
        Assert.Equal(expected, PoolSpin.Applies(command.Split(' ', StringSplitOptions.RemoveEmptyEntries), cores));
}
