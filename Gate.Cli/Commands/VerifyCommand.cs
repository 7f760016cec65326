using System.CommandLine;
using Gate.Core.Attestation;
using Gate.Core.Report;

namespace Gate.Cli.Commands;

public static class VerifyCommand
{
    /// <summary>Exit codes for <c>--help</c>: <see cref="ArtifactVerifier"/>'s outcomes; the lowest failing code wins when several items fail.</summary>
    public const string ExitCodeHelp = "Exit codes: 0 all checks hold, 10 bad signature (or wrong key), " +
        "11 model digest mismatch (the --model file, or the statement's subject against its predicate.model), " +
        "12 policy digest mismatch, 13 evidence file missing or changed, 14 the decision is not one --require-decision accepts, " +
        "3 unreadable or malformed input. When several fail, the lowest code is returned.";

    public static Command Create()
    {
        var artifact = new Option<FileInfo>("--artifact", "-a") { Description = "The attestation to check (OUT/attestation.dsse.json).", Required = true };
        var key = new Option<FileInfo>("--key", "-k") { Description = "The signer's public key (PEM).", Required = true };
        var model = new Option<FileInfo>("--model", "-m") { Description = "Check that this model file is the attested subject." };
        var policy = new Option<FileInfo>("--policy", "-p") { Description = "Check that this policy file is the one the decision was made under." };
        var evidence = new Option<DirectoryInfo>("--evidence", "-e") { Description = "Check every attested evidence file in this folder (OUT/evidence)." };
        var requireDecision = new Option<string[]>("--require-decision", "-r")
        {
            Description = "Accept only these decisions: approve, reject, inconclusive, or a comma-separated list (repeatable). " +
                $"Any other verified decision exits {ArtifactVerifier.DecisionNotAccepted}. Without it the decision is reported, not judged.",
        };
        var cmd = new Command("verify", $"""
            Verify a signed Gate decision: the DSSE signature, that the decision is one you accept, and the model, policy
            and evidence files against the attested digests. Prints one line per item (OK / FAIL / NOTE).
            As a deploy gate, always pass --require-decision approve: a validly signed REJECT is still a REJECT.
            {ExitCodeHelp}
            Example: gate verify --artifact out/attestation.dsse.json --key keys/gate.pub --require-decision approve --model model.onnx --policy policy.yaml --evidence out/evidence
            """) { artifact, key, requireDecision, model, policy, evidence };
        cmd.SetAction((pr, ct) => Cli.Guard(() =>
        {
            var required = ArtifactVerifier.ParseRequiredDecisions(pr.GetValue(requireDecision));
            var pub = VerificationKey.Load(pr.GetValue(key)!.FullName);
            var report = ArtifactVerifier.Verify(pr.GetValue(artifact)!.FullName, pub, pr.GetValue(model)?.FullName,
                pr.GetValue(policy)?.FullName, pr.GetValue(evidence)?.FullName, required);
            foreach (var item in report.Items) Console.Out.WriteLine(SafeText.Line(item.ToString())); // names from the artifact: no line of their own
            Console.Out.WriteLine(report.ExitCode == ArtifactVerifier.Verified ? "VERIFIED" : $"NOT VERIFIED (exit {report.ExitCode})");
            return Task.FromResult(report.ExitCode);
        }));
        return cmd;
    }
}
