using System.Security.Cryptography;
using Gate.Core.Tensors;

namespace Gate.Core.Evidence;

/// <summary>
/// Writes evidence files under one folder and records their SHA-256. File names are sanitised so that a check
/// cannot write outside its folder.
/// </summary>
public sealed class EvidenceWriter
{
    private readonly object _lock = new();
    public string Root { get; }
    public string Prefix { get; }
    public List<EvidenceFile> Files { get; } = [];

    public EvidenceWriter(string root, string prefix = "")
    {
        Root = Path.GetFullPath(root);
        Prefix = prefix;
        Directory.CreateDirectory(Path.Combine(Root, prefix));
    }

    /// <summary>A writer for one check's sub-folder (evidence/&lt;checkId&gt;/).</summary>
    public EvidenceWriter ForCheck(string checkId) => new(Root, Safe(checkId));

    private static string Safe(string name)
    {
        var chars = name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray();
        var s = new string(chars).TrimStart('.');
        return s.Length == 0 ? "_" : s;
    }

    public string PathFor(string fileName) => Path.Combine(Root, Prefix, Safe(fileName));

    public EvidenceFile WriteBytes(string fileName, byte[] data, string description)
    {
        var full = PathFor(fileName);
        File.WriteAllBytes(full, data);
        return Record(full, description);
    }

    public EvidenceFile WriteText(string fileName, string text, string description) =>
        WriteBytes(fileName, System.Text.Encoding.UTF8.GetBytes(text), description);

    public EvidenceFile WriteNpy(string fileName, Tensor t, string description)
    {
        using var ms = new MemoryStream();
        Npy.Write(ms, t);
        return WriteBytes(fileName.EndsWith(".npy", StringComparison.Ordinal) ? fileName : fileName + ".npy", ms.ToArray(), description);
    }

    private EvidenceFile Record(string full, string description)
    {
        var bytes = File.ReadAllBytes(full);
        var rel = Path.GetRelativePath(Root, full).Replace('\\', '/');
        var ef = new EvidenceFile(rel, Convert.ToHexStringLower(SHA256.HashData(bytes)), bytes.LongLength, description);
        lock (_lock) Files.Add(ef);
        return ef;
    }
}
