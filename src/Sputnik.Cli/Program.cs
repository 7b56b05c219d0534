using System.CommandLine;
using Sputnik.Cli;
using Sputnik.Cli.Commands;

Console.OutputEncoding = System.Text.Encoding.UTF8;
var root = new RootCommand("Sputnik — run, serve and train reasoning models (GGUF) in pure .NET.");
root.Options.Add(CliOptions.Verbose);
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(ChatCommand.Create());
root.Subcommands.Add(TemplateCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
return Cli.Invoke(root, args);
