using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Gate.Core.Attestation;
using Gate.Core.Evidence;
using Gate.Core.IO;
using Gate.Sandbox.Protocol;
using Gate.Tests.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Hostile;

/// <summary>
/// What comes out of a sandbox (and what <c>gate verify --evidence</c> reads) is untrusted: a symbolic link at any
/// depth, a FIFO or a device is refused with its reason, never followed, never read, never a hang; nothing of a
/// refused result is copied. (The same attacks from a real compromised container: CompromisedRunnerTests.)
/// </summary>
public class SandboxResultsTests
{
    /// <summary>A secret outside the sandbox's folder that a naive host would pick up through a planted link.</summary>
    private static (string Dir, byte[] Bytes) HostSecret()
    {
        var dir = TestPaths.TempDir("gate-host-secret");
        var bytes = "host secret: -----BEGIN PRIVATE KEY-----\n"u8.ToArray();
        File.WriteAllBytes(Path.Combine(dir, "secret.txt"), bytes);
        return (dir, bytes);
    }

    private static (StagedJob Staged, string EvidenceDir) Results()
    {
        var work = TestPaths.TempDir("gate-sandbox-test");
        var staged = new StagedJob(work, Path.Combine(work, "job"), Path.Combine(work, "results"));
        Directory.CreateDirectory(Path.Combine(staged.ResultsDir, "evidence"));
        return (staged, Path.Combine(TestPaths.TempDir("gate-host-out"), "evidence"));
    }

    private static void WriteResults(StagedJob s, string? evidencePath, byte[] claimed)
    {
        var ev = evidencePath is null ? new List<EvidenceFile>()
            : [new EvidenceFile(evidencePath, Convert.ToHexStringLower(SHA256.HashData(claimed)), claimed.Length, "planted")];
        JobProtocol.WriteJsonAtomic(Path.Combine(s.ResultsDir, RunnerResults.FileName),
            new RunnerResults { Completed = true, Results = [new CheckResult { Id = "accuracy", Type = "accuracy", Verdict = Verdict.Pass, Evidence = ev }] });
    }

    /// <summary>Collect on a worker thread with a deadline: a host that blocks on a FIFO fails the test instead of hanging it.</summary>
    private static async Task<Exception?> CollectWithin(StagedJob s, string evidenceDir)
    {
        var sw = Stopwatch.StartNew();
        var task = Task.Run(() => JobStaging.Collect(s, ["accuracy"], evidenceDir));
        var done = await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken));
        Assert.True(done == task, "reading the sandbox's results hung (a FIFO was opened blocking)");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20));
        return task.Exception?.InnerException;
    }

    public static TheoryData<string, string> Plants => new()
    {
        { "results.json -> host file", "symbolic link" },
        { "results.json FIFO", "FIFO" },
        { "results.json folder", "not a regular file" },
        { "evidence folder -> host folder", "symbolic link" },
        { "evidence subfolder -> host folder", "symbolic link" },
        { "evidence file -> host file", "symbolic link" },
        { "evidence file -> /dev/zero", "symbolic link" },
        { "evidence FIFO", "FIFO" },
        { "results folder -> host folder", "symbolic link" },
    };

    [Theory]
    [MemberData(nameof(Plants))]
    public async Task Planted_links_fifos_and_devices_are_refused_never_followed_and_never_hang(string plant, string reasonMentions)
    {
        var (secretDir, secret) = HostSecret();
        var (s, evidenceDir) = Results();
        using var _ = s;
        var results = Path.Combine(s.ResultsDir, RunnerResults.FileName);
        var evidence = Path.Combine(s.ResultsDir, "evidence");
        switch (plant)
        {
            case "results.json -> host file":
                // The host file even holds a valid, passing results.json: following the link would accept it.
                var forged = Path.Combine(secretDir, "forged-results.json");
                WriteResults(s, null, []);
                File.Move(results, forged);
                File.CreateSymbolicLink(results, forged);
                break;
            case "results.json FIFO": Assert.Equal(0, mkfifo(results, 0x180)); break;
            case "results.json folder": Directory.CreateDirectory(results); break;
            case "evidence folder -> host folder":
                Directory.Delete(evidence);
                Directory.CreateSymbolicLink(evidence, secretDir);
                WriteResults(s, "secret.txt", secret);
                break;
            case "evidence subfolder -> host folder":
                Directory.CreateSymbolicLink(Path.Combine(evidence, "accuracy"), secretDir);
                WriteResults(s, "accuracy/secret.txt", secret);
                break;
            case "evidence file -> host file":
                File.CreateSymbolicLink(Path.Combine(evidence, "secret.txt"), Path.Combine(secretDir, "secret.txt"));
                WriteResults(s, "secret.txt", secret);
                break;
            case "evidence file -> /dev/zero":
                File.CreateSymbolicLink(Path.Combine(evidence, "zero.bin"), "/dev/zero");
                WriteResults(s, "zero.bin", new byte[4096]);
                break;
            case "evidence FIFO":
                Assert.Equal(0, mkfifo(Path.Combine(evidence, "pipe"), 0x180));
                WriteResults(s, "pipe", []);
                break;
            case "results folder -> host folder":
                // The sandbox owns its work folder, so it can swap results/ itself for a link.
                WriteResults(s, "secret.txt", secret);
                File.Copy(results, Path.Combine(secretDir, RunnerResults.FileName));
                Directory.CreateDirectory(Path.Combine(secretDir, "evidence"));
                File.Copy(Path.Combine(secretDir, "secret.txt"), Path.Combine(secretDir, "evidence", "secret.txt"));
                Directory.Delete(s.ResultsDir, recursive: true);
                Directory.CreateSymbolicLink(s.ResultsDir, secretDir);
                break;
        }

        var e = await CollectWithin(s, evidenceDir);
        Assert.IsType<InvalidDataException>(e);
        Assert.Contains(reasonMentions, e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.False(Directory.Exists(evidenceDir) && Directory.EnumerateFileSystemEntries(evidenceDir, "*", SearchOption.AllDirectories).Any(),
            "nothing of a refused result may reach the host's evidence folder");
        Assert.Equal(secret, File.ReadAllBytes(Path.Combine(secretDir, "secret.txt")));
    }

    [Fact]
    public void Oversized_files_are_refused_from_their_size_before_anything_is_read()
    {
        var dir = TestPaths.TempDir("gate-untrusted");
        using (var f = File.Create(Path.Combine(dir, "big.bin"))) f.SetLength(10L << 30); // sparse: 10 GiB claimed, nothing on disk
        var e = Assert.Throws<UnsafeFileException>(() => UntrustedFiles.ReadAll(dir, "big.bin", 1 << 20));
        Assert.Contains("is 10737418240 bytes (limit 1048576)", e.Message);
        foreach (var bad in new[] { "../x", "/etc/passwd", "a/../../x", "", "a//b", "./x" })
            Assert.Throws<UnsafeFileException>(() => UntrustedFiles.ReadAll(dir, bad, 1 << 20));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void Removing_a_work_folder_never_follows_or_chmods_through_a_planted_link()
    {
        var (secretDir, secret) = HostSecret();
        File.SetUnixFileMode(secretDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        var (s, _) = Results();
        Directory.CreateSymbolicLink(Path.Combine(s.ResultsDir, "evidence", "host"), secretDir);
        File.CreateSymbolicLink(Path.Combine(s.ResultsDir, "secret-link"), Path.Combine(secretDir, "secret.txt"));
        Assert.Equal(0, mkfifo(Path.Combine(s.ResultsDir, "pipe"), 0x180));
        s.Dispose();
        Assert.False(Directory.Exists(s.WorkDir));
        Assert.Equal(secret, File.ReadAllBytes(Path.Combine(secretDir, "secret.txt")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute,
            File.GetUnixFileMode(secretDir));
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int mkfifo(string path, uint mode);
}

/// <summary><c>gate verify --evidence</c> reads the evidence folder it is given as untrusted, like the sandbox's output.</summary>
public class VerifyEvidenceTests(SignedDecisionFixture fx) : IClassFixture<SignedDecisionFixture>
{
    private const string Attested = "acc/predictions.csv";

    private static VerifyReport VerifyWithin(string dir, string publicKey)
    {
        var task = Task.Run(() => ArtifactVerifier.Verify(Path.Combine(dir, "out", "attestation.dsse.json"), VerificationKey.Load(publicKey),
            null, null, Path.Combine(dir, "out", "evidence")));
        Assert.True(task.Wait(TimeSpan.FromSeconds(20)), "gate verify hung on the evidence folder (a FIFO was opened blocking)");
        return task.Result;
    }

    public static TheoryData<string, string> Plants => new()
    {
        { "file -> identical copy elsewhere", "symbolic link" },
        { "folder -> identical copy elsewhere", "symbolic link" },
        { "FIFO", "FIFO" },
        { "-> /dev/zero", "symbolic link" },
    };

    [Theory]
    [MemberData(nameof(Plants))]
    public void A_link_fifo_or_device_in_the_evidence_folder_fails_verification_with_its_reason(string plant, string reasonMentions)
    {
        var dir = fx.Copy();
        var file = Path.Combine(dir, "out", "evidence", Attested);
        // An identical copy elsewhere: following the link would "verify" a file that is not in the folder at all.
        var elsewhere = TestPaths.TempDir("gate-elsewhere");
        Directory.CreateDirectory(Path.Combine(elsewhere, "acc"));
        File.Copy(file, Path.Combine(elsewhere, Attested));
        switch (plant)
        {
            case "file -> identical copy elsewhere": File.Delete(file); File.CreateSymbolicLink(file, Path.Combine(elsewhere, Attested)); break;
            case "folder -> identical copy elsewhere":
                Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
                Directory.CreateSymbolicLink(Path.GetDirectoryName(file)!, Path.Combine(elsewhere, "acc"));
                break;
            case "FIFO": File.Delete(file); Assert.Equal(0, mkfifo(file, 0x180)); break;
            case "-> /dev/zero": File.Delete(file); File.CreateSymbolicLink(file, "/dev/zero"); break;
        }
        var report = VerifyWithin(dir, fx.PublicKey);
        Assert.Equal(VerifyFailure.EvidenceMismatch, report.Failure);
        var fail = Assert.Single(report.Items, i => i.Status == VerifyItemStatus.Fail && i.Message.StartsWith("evidence/" + Attested, StringComparison.Ordinal));
        Assert.Contains(reasonMentions, fail.Message, StringComparison.OrdinalIgnoreCase);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int mkfifo(string path, uint mode);
}
