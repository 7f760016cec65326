using System.CommandLine;
using Gate.Cli;
using Gate.Cli.Commands;

// CI logs are files, not terminals: no escape codes there (nor with NO_COLOR), and a width that keeps table rows whole.
if (Console.IsOutputRedirected || Environment.GetEnvironmentVariable("NO_COLOR") is { Length: > 0 })
{
    Spectre.Console.AnsiConsole.Profile.Capabilities.Ansi = false;
    Spectre.Console.AnsiConsole.Profile.Capabilities.ColorSystem = Spectre.Console.ColorSystem.NoColors;
}
if (Console.IsOutputRedirected)
    Spectre.Console.AnsiConsole.Profile.Width = int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out var columns) && columns > 40 ? columns : 140;

var root = new RootCommand("""
    Gate: a zero-shot deployment gate for machine-learning models.
    Judges an ONNX model against a YAML policy (mechanistic checks, adversarial search, sandbox simulation)
    and writes a decision: APPROVE (exit 0), REJECT (1) or INCONCLUSIVE (2). Bad input exits 3, internal errors 4.
    """);
root.Subcommands.Add(CheckCommand.Create());
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(ReplayCommand.Create());
root.Subcommands.Add(KeygenCommand.Create());
root.Subcommands.Add(VerifyCommand.Create());
root.Subcommands.Add(SignModelCommand.Create());
var policy = PolicyCommand.Create();
policy.Subcommands.Add(PolicyApproveCommand.Create());
policy.Subcommands.Add(PolicyImpactCommand.Create());
root.Subcommands.Add(policy);
root.Subcommands.Add(SandboxCommand.Create());
root.Subcommands.Add(ProveCommand.Create());
return await Cli.InvokeAsync(root, args);
