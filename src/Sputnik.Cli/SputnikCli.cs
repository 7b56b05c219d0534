using System.CommandLine;
using Sputnik.Cli.Commands;

namespace Sputnik.Cli;

/// <summary>The command tree; <see cref="Run"/> is the whole CLI (tests call it in-process).</summary>
public static class SputnikCli
{
    /// <summary>
    /// The root is a plain command named "sputnik": a RootCommand takes its name from the executable, which is
    /// "Sputnik.Cli" when run as `dotnet Sputnik.Cli.dll` (the ./sputnik launcher), so help would say `Usage: Sputnik.Cli`.
    /// </summary>
    public static Command CreateRoot()
    {
        var root = new Command("sputnik", "Sputnik — run, serve and train reasoning models (GGUF) in pure .NET.")
        {
            new System.CommandLine.Help.HelpOption(),
            new VersionOption(),
        };
        root.Options.Add(CliOptions.Verbose);
        root.Options.Add(CliOptions.Token);
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(TokenizeCommand.Create());
        root.Subcommands.Add(EmbedCommand.Create());
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(ChatCommand.Create());
        root.Subcommands.Add(TemplateCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(RouteCommand.Create());
        root.Subcommands.Add(ConvertCommand.Create());
        root.Subcommands.Add(SynthCommand.Create());
        root.Subcommands.Add(SynthLoraCommand.Create());
        root.Subcommands.Add(QuantizeCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(SimulateCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        foreach (var hubCommand in HubCommands.Create()) root.Subcommands.Add(hubCommand);
        return root;
    }

    /// <summary>Parses and runs <paramref name="args"/>; returns the exit code (0 ok, 1 error with one line on stderr).</summary>
    public static int Run(string[] args) => Cli.Invoke(CreateRoot(), args);
}
