using Gate.Tests.Support;

namespace Gate.Tests.Governance;

/// <summary>
/// Snapshot testing without Verify (not served here): compares text with an approved file kept in the repository.
/// On a mismatch it writes NAME.received.EXT beside the approved file and fails with the first differing line and
/// the command that approves the new text after review.
/// </summary>
public static class ApprovedFile
{
    public static string Folder => Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "Governance", "Approved");

    public static void Verify(string received, string name)
    {
        var approvedPath = Path.Combine(Folder, name);
        var receivedPath = Path.Combine(Folder, Path.GetFileNameWithoutExtension(name) + ".received" + Path.GetExtension(name));
        string Norm(string s) => s.Replace("\r\n", "\n");
        if (File.Exists(approvedPath) && Norm(File.ReadAllText(approvedPath)) == Norm(received))
        {
            if (File.Exists(receivedPath)) File.Delete(receivedPath);
            return;
        }
        File.WriteAllText(receivedPath, received);
        if (!File.Exists(approvedPath))
            Assert.Fail($"no approved file {approvedPath}; review {receivedPath} and, if right, run: mv '{receivedPath}' '{approvedPath}'");
        var a = Norm(File.ReadAllText(approvedPath)).Split('\n');
        var r = Norm(received).Split('\n');
        int i = 0;
        while (i < a.Length && i < r.Length && a[i] == r[i]) i++;
        Assert.Fail($"""
            {name} differs from the approved text at line {i + 1}:
              approved: {(i < a.Length ? a[i] : "(end of file)")}
              received: {(i < r.Length ? r[i] : "(end of file)")}
            See: diff -u '{approvedPath}' '{receivedPath}'
            If the new text is right: mv '{receivedPath}' '{approvedPath}'
            """);
    }
}
