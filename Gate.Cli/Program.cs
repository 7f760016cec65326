using System.CommandLine;
using Gate.Cli;
using Gate.Cli.Commands;

// Before anything prints: inert console writers, colour only on a terminal (see Terminal).
Terminal.Install();

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
