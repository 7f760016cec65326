using System.CommandLine;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.IO;
using Gate.Core.Policy;
using Gate.Core.Trust;

namespace Gate.Cli.Commands;

public static class PolicyApproveCommand
{
    public static Command Create()
    {
        var policy = new Argument<FileInfo>("policy") { Description = "The policy to approve (YAML). The approval covers its exact bytes (SHA-256)." };
        var key = new Option<FileInfo>("--key", "-k") { Description = "The approver's private key (PKCS#8 PEM, see 'gate keygen').", Required = true };
        var comment = new Option<string>("--comment") { Description = "Why it is approved (recorded in the approval and in every decision that uses it)." };
        var output = new Option<FileInfo>("--out", "-o") { Description = "Where to write the approval (default: POLICY.approvals/<keyid prefix>.dsse.json)." };
        var cmd = new Command("approve", """
            Sign an approval of a policy's exact digest. 'gate check --trust TRUST.yaml' accepts the policy only with enough
            approvals from distinct trusted keys; any edit to the policy invalidates them.
            Example: gate policy approve policies/digits-release.yaml --key keys/alice.key --comment "reviewed in GOV-42"
            """) { policy, key, comment, output };
        cmd.SetAction((pr, ct) => Cli.Guard(() =>
        {
            var policyPath = pr.GetValue(policy)!.FullName;
            // Only a valid policy can be approved: the same loader that gate check uses must accept it.
            var p = PolicyLoader.Load(policyPath);
            using var signer = SigningKey.Load(pr.GetValue(key)!.FullName);
            var envelope = PolicyApprovals.Sign(p, signer, pr.GetValue(comment), DateTimeOffset.UtcNow);
            var path = pr.GetValue(output)?.FullName ?? PolicyApprovals.DefaultFile(policyPath, signer.KeyId);
            AtomicFile.WriteText(path, envelope.ToJson());
            Console.Out.WriteLine($"approved {Path.GetFileName(policyPath)} (sha256 {p.Sha256}) with key {signer.KeyId}");
            Console.Out.WriteLine($"written: {path}");
            return Task.FromResult(ExitCodes.Approve);
        }));
        return cmd;
    }
}
