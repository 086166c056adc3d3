using System.CommandLine;
using Pollen.Cli;
using Pollen.Cli.Commands;

// before anything starts a thread-pool worker: the pool reads it once
PoolSpin.Configure(args);
var root = new RootCommand("Pollen: train and serve language models on machines that volunteers contribute.")
{
    NodeCommand.Create(),
    StatusCommand.Create(),
    DemoCommand.Create(),
    TrainCommand.Create(),
    GenerateCommand.Create(),
    EvalCommand.Create(),
    BenchCommand.Create(),
    DhtCommand.Create(),
    ServeCommand.Create(),
    PeersCommand.Create(),
    ApiCommand.Create(),
};
Shutdown.Install();
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, Shutdown.Token).ConfigureAwait(false);
