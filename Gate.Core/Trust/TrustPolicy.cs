using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Core.Policy;

namespace Gate.Core.Trust;

public sealed record TrustedKey(string Name, VerificationKey Key);

/// <summary>
/// Who may approve policies: governance public keys (by name) and how many distinct ones must have approved the
/// exact policy digest. Read from YAML:
/// <code>
/// required: 2
/// keys:
///   - { name: alice, publicKey: keys/alice.pub }   # path relative to this file
///   - name: bob
///     pem: |
///       -----BEGIN PUBLIC KEY-----
///       ...
/// </code>
/// </summary>
public sealed class TrustPolicy
{
    public required string SourcePath { get; init; }
    public required IReadOnlyList<TrustedKey> Keys { get; init; }
    public required int Required { get; init; }

    public static TrustPolicy Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new GateInputException($"{path}: trust file not found");
        if (info.Length > PolicyYamlReader.MaxBytes) throw new GateInputException($"{path}: trust file is too large");
        var root = PolicyYamlReader.Read(File.ReadAllText(path), path);
        var errors = new List<PolicyError>();
        void Err(PolicyNode n, string msg) => errors.Add(new PolicyError(n.Location, n.Path, msg));
        if (root is not PolicyMapping m) throw PolicyException.At(root, "a trust file is a mapping with 'required' and 'keys'");
        foreach (var k in m.Entries.Where(e => e.Key.Value is not ("required" or "keys")))
            Err(k.Key, $"unknown key '{k.Key.Value}' (expected required, keys)");

        var keys = new List<TrustedKey>();
        if (m["keys"] is not PolicySequence seq || seq.Items.Count == 0) Err(m["keys"] ?? m, "keys: expected a non-empty list of {name, publicKey | pem}");
        else
        {
            var baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            foreach (var item in seq.Items)
            {
                if (item is not PolicyMapping km) { Err(item, "expected a mapping {name, publicKey | pem}"); continue; }
                foreach (var k in km.Entries.Where(e => e.Key.Value is not ("name" or "publicKey" or "pem")))
                    Err(k.Key, $"unknown key '{k.Key.Value}' (expected name, publicKey, pem)");
                var name = PolicyLoader.Str(km["name"]);
                var file = PolicyLoader.Str(km["publicKey"]);
                var pem = PolicyLoader.Str(km["pem"]);
                if (string.IsNullOrWhiteSpace(name)) { Err(km, "name: required"); continue; }
                if ((file is null) == (pem is null)) { Err(km, "give exactly one of publicKey (a PEM file) or pem (inline)"); continue; }
                try
                {
                    var key = file is not null ? VerificationKey.Load(Path.Combine(baseDir, file)) : VerificationKey.FromPem(pem!, $"{km["pem"]!.Location}");
                    if (keys.FirstOrDefault(t => t.Key.KeyId == key.KeyId) is { } dup)
                        Err(km, $"key of '{name}' is the same key as '{dup.Name}' ({key.KeyId}); each trusted key must be distinct");
                    else keys.Add(new TrustedKey(name, key));
                }
                catch (GateInputException e) { Err(km, e.Message); }
            }
        }
        int required = 0;
        if (m["required"] is not PolicyScalar { Kind: ScalarKind.Int } rq || (required = (int)Math.Clamp(rq.AsLong(), int.MinValue, int.MaxValue)) < 1)
            Err(m["required"] ?? m, "required: expected an integer ≥ 1 (how many distinct trusted keys must approve)");
        else if (errors.Count == 0 && required > keys.Count)
            Err(rq, $"required: {required} approvals can never be met with {keys.Count} trusted key(s)");
        if (errors.Count > 0) throw new PolicyException(errors);
        return new TrustPolicy { SourcePath = path, Keys = keys, Required = required };
    }

    /// <summary>
    /// The approvals (from <paramref name="approvalsFolder"/>, default <c>P.approvals/</c>) that are validly signed by
    /// distinct trusted keys for this exact policy digest. Throws <see cref="GateInputException"/> — before anything
    /// runs — when there are fewer than <see cref="Required"/>, saying what each approval file lacked.
    /// </summary>
    public List<ApprovalRef> RequireApprovals(DeploymentPolicy policy, string? approvalsFolder = null)
    {
        var folder = approvalsFolder ?? PolicyApprovals.DefaultFolder(policy.SourcePath);
        var accepted = new Dictionary<string, ApprovalRef>(StringComparer.Ordinal);
        var rejected = new List<string>();
        var files = Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder, "*.dsse.json").Order(StringComparer.Ordinal).ToList() : [];
        foreach (var file in files)
        {
            var name = Path.GetFileName(file);
            DsseEnvelope env;
            try { env = DsseEnvelope.Load(file); }
            catch (GateInputException e) { rejected.Add($"{name}: unreadable ({e.Message})"); continue; }
            if (env.PayloadType != PolicyApprovals.PayloadType) { rejected.Add($"{name}: payloadType is not {PolicyApprovals.PayloadType}"); continue; }
            var signer = Keys.FirstOrDefault(k => env.IsSignedBy(k.Key));
            if (signer is null) { rejected.Add($"{name}: not signed by any trusted key"); continue; }
            PolicyApproval approval;
            try { approval = PolicyApprovals.ParsePayload(env.Payload, file); }
            catch (GateInputException e) { rejected.Add($"{name}: {e.Message}"); continue; }
            if (approval.PolicySha256 != policy.Sha256)
            {
                rejected.Add($"{name}: signed by {signer.Name} for policy digest {approval.PolicySha256}, not the current {policy.Sha256} (was the policy modified after approval?)");
                continue;
            }
            accepted.TryAdd(signer.Key.KeyId, new ApprovalRef(signer.Name, signer.Key.KeyId, approval.PolicySha256, approval.ApprovedAt,
                approval.Comment, name, PolicyApprovals.FileSha256(file)));
        }
        if (accepted.Count < Required)
        {
            var detail = rejected.Count > 0 ? "; " + string.Join("; ", rejected) : "";
            throw new PolicyNotApprovedException(policy.SourcePath,
                $"{policy.SourcePath}: policy '{policy.Metadata.Name}' (sha256 {policy.Sha256}) has {accepted.Count} valid approval(s) from distinct trusted keys in {SourcePath}, " +
                $"{Required} required; approvals looked for in {folder}{(files.Count == 0 ? " (none found)" : "")}{detail}.");
        }
        return [.. accepted.Values.OrderBy(a => a.Signer, StringComparer.Ordinal)];
    }
}

/// <summary>The policy lacks the approvals the trust policy requires (bad input: exit 3); the CLI adds how to approve it.</summary>
public sealed class PolicyNotApprovedException(string policyPath, string message) : GateInputException(message)
{
    public string PolicyPath { get; } = policyPath;
}
