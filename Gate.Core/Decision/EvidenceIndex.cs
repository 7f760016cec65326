using System.Security.Cryptography;
using Gate.Core.Evidence;

namespace Gate.Core.Decision;

/// <summary>
/// Builds the decision's evidence list from the files on the host, not from what checks claim: each file a check
/// reported is re-read under <c>OUT/evidence/</c> and digested. A file that is missing, outside the evidence
/// folder, or whose bytes differ from the digest the check recorded makes that check INCONCLUSIVE: evidence that
/// cannot be re-verified does not support a verdict.
/// </summary>
public static class EvidenceIndex
{
    public const string Folder = "evidence";

    public static List<EvidenceEntry> Build(string evidenceDir, IEnumerable<CheckResult> results)
    {
        var root = Path.GetFullPath(evidenceDir);
        var entries = new List<EvidenceEntry>();
        foreach (var r in results)
        {
            var problems = new List<string>();
            foreach (var f in r.Evidence)
            {
                var full = Path.GetFullPath(Path.Combine(root, f.Path));
                if (Path.IsPathRooted(f.Path) || !full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                {
                    problems.Add($"evidence path '{f.Path}' is outside the evidence folder");
                    continue;
                }
                if (!File.Exists(full)) { problems.Add($"evidence file {f.Path} is missing"); continue; }
                byte[] digest;
                long length;
                using (var fs = File.OpenRead(full)) { length = fs.Length; digest = SHA256.HashData(fs); }
                var hex = Convert.ToHexStringLower(digest);
                if (!string.Equals(hex, f.Sha256, StringComparison.OrdinalIgnoreCase))
                    problems.Add($"evidence file {f.Path} changed after the check wrote it (recorded {f.Sha256}, found {hex})");
                entries.Add(new EvidenceEntry($"{Folder}/{Path.GetRelativePath(root, full).Replace('\\', '/')}", hex, length, r.Id));
            }
            if (problems.Count > 0 && r.Verdict != Verdict.Inconclusive)
            {
                r.Verdict = Verdict.Inconclusive;
                r.Summary = $"evidence cannot be re-verified: {problems[0]}";
            }
            r.Reasons.AddRange(problems);
        }
        return entries;
    }
}
