using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Sandbox;
using Gate.Sandbox.Protocol;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

public class JobProtocolTests
{
    private static CheckResult Sample(string id, double metric) => new()
    {
        Id = id, Type = "adversarial", Enforcement = Enforcement.Advisory, Verdict = Verdict.Fail, Summary = "robust accuracy 0.41 < 0.5",
        Reasons = ["r1", "ünïcödé ✓ \"quoted\""],
        Metrics = new(StringComparer.Ordinal) { ["robustAccuracy"] = metric, ["nan"] = double.NaN, ["inf"] = double.PositiveInfinity, ["tiny"] = 4.9e-324 },
        Requirements = [new RequirementOutcome("robustAccuracy", 0.5, null, metric, false, "robustAccuracy ≥ 0.5")],
        Coverage = "200 samples, PGD 40x5",
        Evidence = [new EvidenceFile("adv/counterexample-0.npy", new string('a', 64), 1234, "x")],
        BudgetUsed = new(StringComparer.Ordinal) { ["queries"] = 123456789012 },
        Details = new JsonObject { ["curve"] = new JsonArray(0.1, 0.2, 0.3), ["nested"] = new JsonObject { ["k"] = "v" } },
        Runtime = "onnxruntime", DurationSeconds = 1.0 / 3.0,
    };

    [Fact]
    public void Results_round_trip_through_json_exactly()
    {
        var rng = new Random(5);
        for (int i = 0; i < 50; i++)
        {
            var original = new RunnerResults
            {
                Completed = true, Results = [Sample("c" + i, rng.NextDouble() * Math.Pow(10, rng.Next(-300, 300)))],
                Runtime = new RuntimeInfo("onnxruntime", "1.30.0", "CPUExecutionProvider", "cpu", null),
            };
            var json = JsonSerializer.Serialize(original, JobProtocol.Json);
            var back = JsonSerializer.Deserialize<RunnerResults>(json, JobProtocol.Json)!;
            Assert.Equal(json, JsonSerializer.Serialize(back, JobProtocol.Json));
            var a = original.Results[0]; var b = back.Results[0];
            Assert.Equal(a.Metrics["robustAccuracy"], b.Metrics["robustAccuracy"]); // bit-exact double
            Assert.True(double.IsNaN(b.Metrics["nan"]));
            Assert.Equal(a.Enforcement, b.Enforcement);
            Assert.Equal(a.Verdict, b.Verdict);
            Assert.Equal(a.BudgetUsed["queries"], b.BudgetUsed["queries"]);
            Assert.Equal(a.DurationSeconds, b.DurationSeconds);
            Assert.Equal(a.Details.ToJsonString(), b.Details.ToJsonString());
            Assert.Equal(original.Runtime, back.Runtime);
        }
    }

    [Fact]
    public void Progress_lines_round_trip_and_junk_is_not_progress()
    {
        var u = new ProgressUpdate("robustness", "pgd", 1200, 8000, "queries");
        Assert.True(JobProtocol.TryParseProgress(JobProtocol.ProgressJson(u), out var back));
        Assert.Equal(u, back);
        foreach (var junk in new[] { "", "hello", "{\"progress\":", "{\"progress\":{\"checkId\":null}}", "{\"progress\":{\"checkId\":\"a\",\"task\":\"b\",\"done\":\"x\"}}",
                     "{\"progress\":{\"checkId\":\"a\",\"task\":\"b\",\"done\":1,\"total\":2" + new string(' ', JobProtocol.MaxLineChars) + "}}" })
            Assert.False(JobProtocol.TryParseProgress(junk, out _), junk.Length > 80 ? "long line" : junk);
    }
}

/// <summary>The host's validation of what a sandbox wrote: every rejection leaves the evidence folder untouched.</summary>
public class JobStagingTests
{
    private static (StagedJob Staged, string EvidenceDir) Setup()
    {
        var work = TestPaths.TempDir("gate-staging");
        var staged = new StagedJob(work, Path.Combine(work, "job"), Path.Combine(work, "results"));
        Directory.CreateDirectory(Path.Combine(staged.ResultsDir, "evidence", "accuracy"));
        return (staged, Path.Combine(work, "host-evidence"));
    }

    private static EvidenceFile WriteEvidence(StagedJob s, string rel, byte[] bytes)
    {
        File.WriteAllBytes(Path.Combine(s.ResultsDir, "evidence", rel), bytes);
        return new EvidenceFile(rel, Convert.ToHexStringLower(SHA256.HashData(bytes)), bytes.Length, "test");
    }

    private static void WriteResults(StagedJob s, params CheckResult[] results) =>
        JobProtocol.WriteJsonAtomic(Path.Combine(s.ResultsDir, RunnerResults.FileName), new RunnerResults { Completed = true, Results = [.. results] });

    private static CheckResult Result(string id, params EvidenceFile[] ev) => new() { Id = id, Type = "accuracy", Verdict = Verdict.Pass, Evidence = [.. ev] };

    [Fact]
    public void Valid_results_are_accepted_and_evidence_copied_with_its_digest()
    {
        var (s, ev) = Setup();
        using var _ = s;
        var file = WriteEvidence(s, "accuracy/confusion.txt", "1 2 3"u8.ToArray());
        WriteResults(s, Result("accuracy", file));
        var got = JobStaging.Collect(s, ["accuracy", "other"], ev);
        Assert.Single(got.Results);
        Assert.Equal("1 2 3", File.ReadAllText(Path.Combine(ev, "accuracy", "confusion.txt")));
    }

    public static TheoryData<string> Tampering => new() { "missing", "garbage", "truncated", "not-completed", "unrequested", "duplicate", "traversal", "absolute", "digest", "size", "evidence-missing" };

    [Theory]
    [MemberData(nameof(Tampering))]
    public void Tampered_results_are_rejected_with_a_reason_and_nothing_is_copied(string how)
    {
        var (s, ev) = Setup();
        using var _ = s;
        var good = WriteEvidence(s, "accuracy/a.txt", "good"u8.ToArray());
        var path = Path.Combine(s.ResultsDir, RunnerResults.FileName);
        switch (how)
        {
            case "missing": break;
            case "garbage": File.WriteAllText(path, "{ nope ]"); break;
            case "truncated": WriteResults(s, Result("accuracy", good)); File.WriteAllText(path, File.ReadAllText(path)[..40]); break;
            case "not-completed": JobProtocol.WriteJsonAtomic(path, new RunnerResults { Completed = false, Error = "boom" }); break;
            case "unrequested": WriteResults(s, Result("accuracy", good), Result("sneaky")); break;
            case "duplicate": WriteResults(s, Result("accuracy", good), Result("accuracy")); break;
            case "traversal": WriteResults(s, Result("accuracy", good, good with { Path = "../../job/x" })); break;
            case "absolute": WriteResults(s, Result("accuracy", good, good with { Path = "/etc/passwd" })); break;
            case "digest": WriteResults(s, Result("accuracy", good, good with { Sha256 = new string('0', 64) })); break;
            case "size": WriteResults(s, Result("accuracy", good with { Bytes = 3 })); break;
            case "evidence-missing": WriteResults(s, Result("accuracy", good, good with { Path = "accuracy/none.txt" })); break;
        }
        var e = Assert.Throws<InvalidDataException>(() => JobStaging.Collect(s, ["accuracy"], ev));
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        Assert.False(Directory.Exists(ev) && Directory.EnumerateFiles(ev, "*", SearchOption.AllDirectories).Any(), "nothing may be copied from rejected results");
    }

    /// <summary>Each check's result in its own file, as the runner writes them (completed envelope, no results in it).</summary>
    private static void WriteCheckFiles(StagedJob s, string[] ids, params CheckResult[] results)
    {
        JobProtocol.WriteCheckResults(s.ResultsDir, ids, results, JobStaging.MaxCheckResultBytes);
        JobProtocol.WriteJsonAtomic(Path.Combine(s.ResultsDir, RunnerResults.FileName), new RunnerResults { Completed = true });
    }

    [Fact]
    public void One_oversized_check_result_is_inconclusive_alone_and_the_others_keep_their_verdicts_and_evidence()
    {
        var (s, ev) = Setup();
        using var _ = s;
        var file = WriteEvidence(s, "accuracy/confusion.txt", "1 2 3"u8.ToArray());
        string[] ids = ["big", "accuracy"];
        WriteCheckFiles(s, ids, Result("big"), Result("accuracy", file));
        // The big check's file is over its cap (sparse: claimed, not written): refused from its size, never read.
        using (var f = File.OpenWrite(Path.Combine(s.ResultsDir, RunnerResults.CheckFile(0)))) f.SetLength(JobStaging.MaxCheckResultBytes + 1);
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(TestPaths.TempDir("gate-staging")));
        var plan = job.Plan with { Checks = [job.Plan.Checks[0] with { Id = "big", Type = "trojan" }, job.Plan.Checks[0]] };

        var got = JobStaging.Collect(s, job with { Plan = plan }, ev).Results.ToDictionary(r => r.Id);

        Assert.Equal(Verdict.Pass, got["accuracy"].Verdict);
        Assert.Equal("1 2 3", File.ReadAllText(Path.Combine(ev, "accuracy", "confusion.txt")));
        Assert.Equal(Verdict.Inconclusive, got["big"].Verdict);
        Assert.Equal("trojan", got["big"].Type);
        Assert.Contains($"{JobStaging.MaxCheckResultBytes + 1} bytes (cap {JobStaging.MaxCheckResultBytes})", got["big"].Summary);
    }

    [Fact]
    public void A_check_whose_evidence_is_over_its_cap_is_inconclusive_alone_and_none_of_its_evidence_is_copied()
    {
        var (s, ev) = Setup();
        using var _ = s;
        Directory.CreateDirectory(Path.Combine(s.ResultsDir, "evidence", "big"));
        var small = WriteEvidence(s, "big/small.txt", "small"u8.ToArray());
        var huge = Path.Combine(s.ResultsDir, "evidence", "big", "huge.bin");
        using (var f = File.Create(huge)) f.SetLength(JobStaging.MaxEvidenceFileBytes + 1);
        var good = WriteEvidence(s, "accuracy/a.txt", "good"u8.ToArray());
        WriteCheckFiles(s, ["big", "accuracy"], Result("big", small, new EvidenceFile("big/huge.bin", new string('0', 64), JobStaging.MaxEvidenceFileBytes + 1, "x")), Result("accuracy", good));

        var got = JobStaging.Collect(s, ["big", "accuracy"], ev).Results.ToDictionary(r => r.Id);

        Assert.Equal(Verdict.Pass, got["accuracy"].Verdict);
        Assert.Equal(Verdict.Inconclusive, got["big"].Verdict);
        Assert.Contains("huge.bin", got["big"].Summary);
        Assert.True(File.Exists(Path.Combine(ev, "accuracy", "a.txt")));
        Assert.False(Directory.Exists(Path.Combine(ev, "big")), "an oversized check keeps none of its evidence");
    }

    [Fact]
    public void The_runner_replaces_a_result_over_the_cap_without_materialising_it()
    {
        var (s, ev) = Setup();
        using var _ = s;
        var huge = Result("big");
        huge.Details["values"] = new System.Text.Json.Nodes.JsonArray([.. Enumerable.Range(0, 100_000).Select(i => (System.Text.Json.Nodes.JsonNode?)i)]);
        JobProtocol.WriteCheckResults(s.ResultsDir, ["big", "accuracy"], [huge, Result("accuracy")], maxBytes: 64 << 10);
        JobProtocol.WriteJsonAtomic(Path.Combine(s.ResultsDir, RunnerResults.FileName), new RunnerResults { Completed = true });

        Assert.True(new FileInfo(Path.Combine(s.ResultsDir, RunnerResults.CheckFile(0))).Length <= 64 << 10);
        var got = JobStaging.Collect(s, ["big", "accuracy"], ev).Results.ToDictionary(r => r.Id);
        Assert.Equal(Verdict.Inconclusive, got["big"].Verdict);
        Assert.Contains("per-check cap", got["big"].Summary);
        Assert.Equal(Verdict.Pass, got["accuracy"].Verdict);
    }

    public static TheoryData<string> CheckFileTampering => new() { "malformed", "other-id", "link", "also-in-results.json" };

    /// <summary>Only size is confined to its check: a check file that is malformed, misplaced or a link is tampering, and voids the run.</summary>
    [Theory]
    [MemberData(nameof(CheckFileTampering))]
    public void Tampered_check_files_reject_the_whole_run(string how)
    {
        var (s, ev) = Setup();
        using var _ = s;
        var good = WriteEvidence(s, "accuracy/a.txt", "good"u8.ToArray());
        WriteCheckFiles(s, ["accuracy", "other"], Result("accuracy", good), Result("other"));
        var second = Path.Combine(s.ResultsDir, RunnerResults.CheckFile(1));
        switch (how)
        {
            case "malformed": File.WriteAllText(second, "{ nope ]"); break;
            case "other-id": File.Copy(Path.Combine(s.ResultsDir, RunnerResults.CheckFile(0)), second, overwrite: true); break;
            case "link": File.Delete(second); File.CreateSymbolicLink(second, Path.Combine(s.ResultsDir, RunnerResults.CheckFile(0))); break;
            case "also-in-results.json": WriteResults(s, Result("other")); break;
        }
        var e = Assert.Throws<InvalidDataException>(() => JobStaging.Collect(s, ["accuracy", "other"], ev));
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        Assert.False(Directory.Exists(ev) && Directory.EnumerateFiles(ev, "*", SearchOption.AllDirectories).Any(), "nothing may be copied from rejected results");
    }

    [Fact]
    public void Staging_copies_the_datasets_the_plan_uses_and_relocates_the_plan_to_them()
    {
        var dir = TestPaths.TempDir("gate-staging");
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir));
        using var staged = JobStaging.Stage(job);
        var manifest = JobProtocol.ReadJson<JobManifest>(Path.Combine(staged.JobDir, JobManifest.FileName));
        Assert.Equal(job.ModelSha256, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(staged.JobDir, manifest.Model)))));
        var plan = manifest.Plan!;
        Assert.Equal(job.Plan.PolicySha256, plan.PolicySha256);
        Assert.Equal(["accuracy"], plan.CheckIds);
        var ds = plan.Datasets["test"];
        Assert.False(Path.IsPathRooted(ds.InputsPath));
        Assert.False(Path.IsPathRooted(ds.LabelsPath!));
        Assert.Equal(File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "examples", "digits", "data", "digits_test_x.npy")), File.ReadAllBytes(Path.Combine(staged.JobDir, ds.InputsPath)));
        Assert.Equal(job.Plan.Datasets["test"].InputsSha256, ds.InputsSha256);
        Assert.Null(manifest.Fault);
    }

    [Fact]
    public void Data_overrides_are_staged_as_copies_in_the_plans_place()
    {
        var dir = TestPaths.TempDir("gate-staging");
        var x = Path.Combine(dir, "other-x.npy");
        File.Copy(Path.Combine(TestPaths.RepoRoot, "examples", "digits", "data", "digits_test_x.npy"), x);
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir), data: new Dictionary<string, string> { ["test"] = x });
        using var staged = JobStaging.Stage(job);
        var manifest = JobProtocol.ReadJson<JobManifest>(Path.Combine(staged.JobDir, JobManifest.FileName));
        var rel = manifest.Plan!.Datasets["test"].InputsPath;
        Assert.False(Path.IsPathRooted(rel));
        Assert.Equal(File.ReadAllBytes(x), File.ReadAllBytes(Path.Combine(staged.JobDir, rel)));
    }
}

public class BoundedLinesTests
{
    [Fact]
    public async Task Lines_are_split_and_an_overlong_line_is_dropped_not_buffered()
    {
        var text = "a\r\n" + new string('x', 5000) + "\nb\nü€\ntail";
        var lines = new List<string>();
        await BoundedLines.PumpAsync(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text)), lines.Add, maxChars: 100, TestContext.Current.CancellationToken);
        Assert.Equal(["a", "b", "ü€", "tail"], lines);
    }
}
