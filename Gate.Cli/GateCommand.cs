using System.CommandLine;
using Gate.Cli.Commands;

namespace Gate.Cli;

/// <summary>The <c>gate</c> command tree: built here so that the process entry and in-process tests run the same commands.</summary>
public static class GateCommand
{
    public static RootCommand Create()
    {
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
        root.Subcommands.Add(ShardCommand.Create());
        return root;
    }
}
