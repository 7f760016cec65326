using System.CommandLine;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Core.IO;
using Gate.Core.Report;

namespace Gate.Cli.Commands;

public static class VerifyCommand
{
    /// <summary>Exit codes for <c>--help</c> (<see cref="ExitCodes.Verify"/>); the lowest failing code wins when several items fail.</summary>
    public static readonly string ExitCodeHelp = $"Exit codes: {ExitCodes.Verify.Verified} all checks hold, {ExitCodes.Verify.BadSignature} bad signature (or wrong key), " +
        $"{ExitCodes.Verify.ModelMismatch} model digest mismatch (the --model file, or the statement's subject against its predicate.model), " +
        $"{ExitCodes.Verify.PolicyMismatch} policy digest mismatch, {ExitCodes.Verify.EvidenceMismatch} evidence file missing or changed, " +
        $"{ExitCodes.Verify.DecisionNotAccepted} the decision is not one --require-decision accepts, " +
        $"{ExitCodes.BadInput} unreadable or malformed input. When several fail, the lowest code is returned.";

    /// <summary>The flag that checks what a NOTE line says was not checked (Gate.Core names the item, the CLI its flag).</summary>
    private static readonly Dictionary<string, string> HintFor = new(StringComparer.Ordinal)
    {
        ["decision"] = "use --require-decision approve to gate on it",
        ["model"] = "give --model to check it",
        ["policy"] = "give --policy to check it",
        ["evidence"] = "give --evidence to check it",
    };

    /// <summary>
    /// Parses <c>--require-decision</c> values: each is approve, reject or inconclusive, or a comma-separated list of
    /// them (case-insensitive). Returns null when none is given (the decision is then reported, not judged).
    /// </summary>
    public static IReadOnlySet<GateDecision>? ParseRequiredDecisions(IEnumerable<string>? values)
    {
        var set = new HashSet<GateDecision>();
        foreach (var part in (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)))
        {
            if (!ArtifactVerifier.TryParseDecision(part.ToLowerInvariant(), out var d))
                throw new GateInputException($"--require-decision: '{UntrustedInput.Printable(part)}' is not a decision (expected approve, reject or inconclusive, or a comma-separated list of them)");
            set.Add(d);
        }
        return set.Count == 0 ? null : set;
    }

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
                $"Any other verified decision exits {ExitCodes.Verify.DecisionNotAccepted}. Without it the decision is reported, not judged.",
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
            var required = ParseRequiredDecisions(pr.GetValue(requireDecision));
            var pub = VerificationKey.Load(pr.GetValue(key)!.FullName);
            var report = ArtifactVerifier.Verify(pr.GetValue(artifact)!.FullName, pub, pr.GetValue(model)?.FullName,
                pr.GetValue(policy)?.FullName, pr.GetValue(evidence)?.FullName, required);
            foreach (var item in report.Items) // names from the artifact: no line of their own
                Console.Out.WriteLine(SafeText.Line(item.Status == VerifyItemStatus.Note && HintFor.TryGetValue(item.What, out var hint) ? $"{item}; {hint}" : item.ToString()));
            int code = ExitCodes.Verify.For(report.Failure);
            Console.Out.WriteLine(report.Verified ? "VERIFIED" : $"NOT VERIFIED (exit {code})");
            return Task.FromResult(code);
        }));
        return cmd;
    }
}
