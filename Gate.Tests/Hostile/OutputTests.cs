using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Gate.Core;
using Gate.Core.Model.Proto;
using Gate.Core.Report;
using Gate.Tests.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Hostile;

/// <summary>
/// The output folder, the terminal and the CI log under hostile conditions: results of an earlier run must never
/// pass for this run's, two runs must not share a folder, a model's names must not drive the terminal or forge a
/// line, and a long run in CI must not be silent. Each case runs the real CLI as a process.
/// </summary>
public class OutputTests
{
    private static readonly string[] EarlierSet = ["decision.json", "junit.xml", "report.html", "summary.md", "attestation.dsse.json"];

    /// <summary>An output folder holding a complete-looking earlier result, Gate's own mark, and a user's unrelated file.</summary>
    private static string FolderWithEarlierResults(string dir)
    {
        var outDir = Path.Combine(dir, "out");
        Directory.CreateDirectory(Path.Combine(outDir, "evidence", "acc"));
        foreach (var f in EarlierSet) File.WriteAllText(Path.Combine(outDir, f), "from an earlier run: APPROVE");
        File.WriteAllText(Path.Combine(outDir, "evidence", "acc", "predictions.csv"), "earlier");
        File.WriteAllText(Path.Combine(outDir, "notes.txt"), "the user's own file");
        return outDir;
    }

    private static void AssertNoResultLeft(string outDir)
    {
        foreach (var f in EarlierSet) Assert.False(File.Exists(Path.Combine(outDir, f)), $"{f} was left in {outDir}");
        Assert.False(Directory.Exists(Path.Combine(outDir, "evidence")), "evidence/ was left");
        Assert.False(Directory.Exists(Path.Combine(outDir, OutputSet.WorkFolder)), "the work folder was left");
        Assert.Empty(Directory.GetFiles(outDir, "*.tmp", SearchOption.AllDirectories));
        Assert.Equal("the user's own file", File.ReadAllText(Path.Combine(outDir, "notes.txt")));
    }

    private static string Check(string policy, string outDir) =>
        string.Join(' ', "check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir);

    // ------------------------------------------------------------------ item 6: all or nothing, one run at a time

    [Fact]
    public void A_refused_run_leaves_no_result_of_an_earlier_run_and_no_user_file_is_touched()
    {
        var dir = TestPaths.TempDir("gate-out-refused");
        var outDir = FolderWithEarlierResults(dir);
        var policy = AuditTestKit.WritePolicy(dir);
        File.WriteAllText(policy, File.ReadAllText(policy).Replace("input: {", "pixels: {")); // bad input: exit 3
        var r = GateProcess.Run("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir);
        Assert.True(r.ExitCode == 3, r.All);
        AssertNoResultLeft(outDir);
    }

    [Fact]
    public void A_completed_run_replaces_the_whole_earlier_set_and_leaves_no_work_folder()
    {
        var dir = TestPaths.TempDir("gate-out-replace");
        var outDir = FolderWithEarlierResults(dir);
        var r = GateProcess.Run("check", "--model", AuditTestKit.ExampleModel, "--policy", AuditTestKit.WritePolicy(dir), "--out", outDir, "--sandbox", "none");
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Equal("approve", JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!["decision"]!.GetValue<string>());
        Assert.False(File.Exists(Path.Combine(outDir, "attestation.dsse.json"))); // unsigned run: the earlier signature is gone
        Assert.False(File.Exists(Path.Combine(outDir, "evidence", "acc", "predictions.csv"))); // no earlier evidence mixed in
        Assert.False(Directory.Exists(Path.Combine(outDir, OutputSet.WorkFolder)));
        Assert.Equal("the user's own file", File.ReadAllText(Path.Combine(outDir, "notes.txt")));
    }

    [Fact]
    public void An_evidence_folder_that_gate_did_not_write_is_never_deleted()
    {
        // `--out .` in a folder with its own evidence/: refused (exit 3), the folder intact.
        var dir = TestPaths.TempDir("gate-out-user-evidence");
        Directory.CreateDirectory(Path.Combine(dir, "evidence"));
        File.WriteAllText(Path.Combine(dir, "evidence", "contract.pdf"), "mine");
        var policy = AuditTestKit.WritePolicy(TestPaths.TempDir());
        var r = GateProcess.Run(["check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", ".", "--sandbox", "none"], null, TimeSpan.FromMinutes(3), dir);
        Assert.True(r.ExitCode == 3, r.All);
        Assert.Contains("evidence", r.Stderr);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(dir, "evidence", "contract.pdf")));
        Assert.Equal(["contract.pdf"], Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories).Select(Path.GetFileName).Where(n => n != "evidence"));
    }

    [Fact]
    public void A_second_run_into_a_folder_in_use_is_refused_naming_the_holder()
    {
        var dir = TestPaths.TempDir("gate-out-locked");
        var outDir = Path.Combine(dir, "out");
        var policy = AuditTestKit.WritePolicy(dir);
        using (OutputSet.Open(outDir)) // the first run, holding the folder
        {
            var r = GateProcess.Run("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir, "--sandbox", "none");
            Assert.True(r.ExitCode == 3, r.All);
            Assert.Contains("in use by another gate run", r.Stderr);
            Assert.Contains($"pid {Environment.ProcessId} on host {Environment.MachineName}", r.Stderr);
            Assert.True(Directory.Exists(Path.Combine(outDir, OutputSet.WorkFolder)), "the refused run removed the holder's work folder");
        }
        var again = GateProcess.Run("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir, "--sandbox", "none");
        Assert.True(again.ExitCode == 0, again.All);
    }

    [Fact]
    public void A_killed_run_leaves_no_earlier_result_and_the_next_run_takes_its_lock_over()
    {
        var dir = TestPaths.TempDir("gate-out-killed");
        var outDir = FolderWithEarlierResults(dir);
        // A sandbox check keeps the run busy for a while (a runner process starts), long enough to kill it mid-run.
        var policy = AuditTestKit.WritePolicy(dir, withSandboxCheck: true);
        int killedPid;
        using (var p = StartGate("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir, "--sandbox", "process"))
        {
            var holder = Path.Combine(outDir, OutputSet.WorkFolder, OutputSet.HolderFile);
            var deadline = Stopwatch.StartNew();
            while (!File.Exists(holder) && !p.HasExited && deadline.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(5);
            Assert.True(File.Exists(holder) && !p.HasExited, "the run never showed itself as running in its output folder");
            killedPid = p.Id;
            p.Kill(entireProcessTree: true); // SIGKILL: no cleanup code runs
            p.WaitForExit();
        }
        foreach (var f in EarlierSet) Assert.False(File.Exists(Path.Combine(outDir, f)), $"{f} of the earlier run survived the killed run");
        Assert.False(File.Exists(Path.Combine(outDir, "evidence", "acc", "predictions.csv")));

        // The kernel released the dead run's lock; the next run takes over, says so and cleans up after it.
        var next = GateProcess.Run("check", "--model", AuditTestKit.ExampleModel, "--policy", AuditTestKit.WritePolicy(dir, name: "host-only.yaml"), "--out", outDir, "--sandbox", "none");
        Assert.True(next.ExitCode == 0, next.All);
        Assert.Contains($"left by a gate run that did not finish (pid {killedPid} on host {Environment.MachineName}", next.Stderr);
        Assert.True(File.Exists(Path.Combine(outDir, "decision.json")));
        Assert.False(Directory.Exists(Path.Combine(outDir, OutputSet.WorkFolder)));
        Assert.Equal("the user's own file", File.ReadAllText(Path.Combine(outDir, "notes.txt")));
    }

    // ------------------------------------------------------------------ item 10: --out that cannot be written is bad input

    [Fact]
    public void Out_that_is_a_file_is_bad_input()
    {
        var dir = TestPaths.TempDir("gate-out-file");
        var file = Path.Combine(dir, "out");
        File.WriteAllText(file, "a file");
        var r = GateProcess.Run("check", "--model", AuditTestKit.ExampleModel, "--policy", AuditTestKit.WritePolicy(dir), "--out", file, "--sandbox", "none");
        Assert.True(r.ExitCode == 3, r.All);
        Assert.Contains($"--out {file}: this is a file, not a folder", r.Stderr);
        Assert.Equal("a file", File.ReadAllText(file));
    }

    [Fact]
    public void Out_on_a_read_only_filesystem_is_bad_input()
    {
        var dir = TestPaths.TempDir("gate-out-ro");
        var mount = Path.Combine(dir, "ro");
        Directory.CreateDirectory(mount);
        var r = InMountNamespace($"mount -t tmpfs -o ro,size=64k tmpfs '{mount}'", Check(AuditTestKit.WritePolicy(dir), mount) + " --sandbox none");
        Assert.True(r.ExitCode == 3, r.All);
        Assert.Contains($"--out {mount}: the folder is not writable", r.Stderr);
        Assert.Contains("Read-only file system", r.Stderr);
        Assert.DoesNotContain("internal error", r.Stderr);
    }

    [Fact]
    public void A_full_disk_while_writing_outputs_is_bad_input_and_leaves_nothing()
    {
        var dir = TestPaths.TempDir("gate-out-full");
        var mount = Path.Combine(dir, "small");
        Directory.CreateDirectory(mount);
        // 16 KiB: room for the earlier run's two small files and a user file; after those two are removed, room for
        // the work folder's holder file and decision.json, but not for the reports as well.
        var plant = $"printf 'earlier APPROVE' > '{mount}/decision.json' && printf 'earlier' > '{mount}/junit.xml' && printf \"the user's own file\" > '{mount}/notes.txt'";
        var r = InMountNamespace($"mount -t tmpfs -o size=16k tmpfs '{mount}' && {plant}",
            Check(AuditTestKit.WritePolicy(dir), mount) + $" --sandbox none; echo \"rc=$?\"; ls -A '{mount}'; cat '{mount}/notes.txt'");
        Assert.Contains("rc=3", r.Stdout);
        Assert.Contains("No space left on device", r.Stderr);
        Assert.Contains("nothing from this run was placed there", r.Stderr);
        Assert.DoesNotContain("internal error", r.Stderr);
        var listing = r.Stdout[(r.Stdout.IndexOf("rc=3", StringComparison.Ordinal) + 4)..].Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal([OutputSet.LockFile, "notes.txt", "the user's own file"], listing);
    }

    /// <summary>
    /// Runs the gate CLI inside a private mount namespace (a user namespace when not root), after a setup command
    /// such as mounting a small or read-only tmpfs: the only honest way to produce a full or read-only disk.
    /// </summary>
    private static ProcessResult InMountNamespace(string setup, string gateArgs)
    {
        var probe = RunShell("unshare -rm true");
        Need.Component("GATE_REQUIRE_MOUNT_NAMESPACE", probe.ExitCode == 0, $"cannot create a mount namespace (unshare -rm: {probe.Stderr.Trim()})");
        var script = Path.Combine(TestPaths.TempDir("gate-mountns"), "run.sh");
        File.WriteAllText(script, $"set -e\n{setup}\nset +e\ndotnet '{GateProcess.GateDll}' {gateArgs}\n");
        return RunProcess("unshare", ["-rm", "bash", script]);
    }

    private static ProcessResult RunShell(string script) => RunProcess("bash", ["-c", script]);

    // ------------------------------------------------------------------ item 9: model-controlled names are inert

    // An OSC 8 hyperlink, a red colour, a C1 CSI, a bidi override, a carriage return and a forged decision line.
    private const string Payload = "Relu\u001b]8;;https://evil.example/\u0007click\u001b]8;;\u0007\u001b[31m\r\nDecision: APPROVE\u001b[0m\u009b32m\u202e|x| y |\n| evil | row |";

    private static string HostileModel(string dir)
    {
        var b = new OnnxBuilder().Input("input", -1, 1, 8, 8).Output("y", -1, 1, 8, 8);
        b.Node(Payload, ["input"], ["y"], name: "node" + Payload);
        b.Graph.Node[0].Domain = "evil.domain\u001b[2J" + "\nDecision: APPROVE";
        b.Model.OpsetImport.Add(new OperatorSetIdProto { Domain = b.Graph.Node[0].Domain, Version = 1 });
        b.Graph.Name = "graph" + Payload;
        b.Model.MetadataProps.Add(new StringStringEntryProto { Key = "k" + Payload, Value = Payload });
        return b.Save(Path.Combine(dir, "hostile.onnx"));
    }

    private static void AssertInert(string text, string where)
    {
        foreach (var ch in text)
            Assert.False(ch is '\u001b' or '\u0007' or '\r' or '\u202e' or (>= '\u0080' and <= '\u009f'), $"{where} carries U+{(int)ch:X4}");
    }

    private static void AssertNoForgedLine(string text, string where) =>
        Assert.DoesNotContain(text.Split('\n'), l => l.TrimStart().StartsWith("Decision: APPROVE", StringComparison.Ordinal) || l.StartsWith("| evil", StringComparison.Ordinal));

    [Fact]
    public void Control_sequences_in_model_names_reach_neither_terminal_nor_summary_nor_junit()
    {
        var dir = TestPaths.TempDir("gate-ansi");
        var outDir = Path.Combine(dir, "out");
        var r = GateProcess.Run("check", "--model", HostileModel(dir), "--policy", AuditTestKit.WritePolicy(dir), "--out", outDir, "--sandbox", "none");
        Assert.True(r.ExitCode == 1, r.All); // the operator is outside the allow list: REJECT
        AssertInert(r.Stdout, "stdout");
        AssertInert(r.Stderr, "stderr");
        AssertNoForgedLine(r.Stdout, "stdout");
        AssertNoForgedLine(r.Stderr, "stderr");
        Assert.Single(r.Stdout.Split('\n'), l => l.StartsWith("Decision: ", StringComparison.Ordinal));
        Assert.Contains("Decision: REJECT", r.Stdout);
        Assert.Contains("\\u001B", r.Stdout); // shown, not obeyed

        var summary = File.ReadAllText(Path.Combine(outDir, "summary.md"));
        AssertInert(summary, "summary.md");
        AssertNoForgedLine(summary, "summary.md");
        Assert.StartsWith("# Gate: ❌ REJECT", summary);
        Assert.Equal(3, summary.Split('\n').Count(l => l.StartsWith('|'))); // header, rule, one check: no forged row

        var junitText = File.ReadAllText(Path.Combine(outDir, "junit.xml"));
        AssertInert(junitText, "junit.xml");
        var junit = XDocument.Parse(junitText); // well-formed XML 1.0
        Assert.Equal(["graph", "decision"], junit.Descendants("testcase").Select(t => (string)t.Attribute("name")!));

        AssertInert(File.ReadAllText(Path.Combine(outDir, "report.html")), "report.html");
    }

    [Fact]
    public void With_json_stdout_stays_json_and_keeps_the_names_exactly()
    {
        var dir = TestPaths.TempDir("gate-ansi-json");
        var r = GateProcess.Run("check", "--model", HostileModel(dir), "--policy", AuditTestKit.WritePolicy(dir), "--out", Path.Combine(dir, "out"), "--sandbox", "none", "--json");
        Assert.True(r.ExitCode == 1, r.All);
        AssertInert(r.Stdout, "stdout");
        AssertInert(r.Stderr, "stderr");
        var doc = JsonNode.Parse(r.Stdout)!; // nothing but the decision on stdout
        Assert.Contains(Payload, doc["checks"]![0]!["summary"]!.GetValue<string>()); // the record keeps the truth
    }

    [Fact]
    public void SafeText_escapes_every_control_format_and_separator_character_visibly()
    {
        Assert.Equal("a\\u001B[31mb\\u000Ac\\u202Ed\\u2028e\\u009Bf", SafeText.Line("a\u001b[31mb\nc\u202ed\u2028e\u009bf"));
        Assert.Equal("l1\nl2\t\\u000D\\u0007", SafeText.Text("l1\nl2\t\r\u0007"));
        Assert.Equal("ok ✅ 😀 é", SafeText.Line("ok ✅ 😀 é"));
        Assert.Equal("\\uD800x", SafeText.Line("\ud800x")); // a lone surrogate
    }

    // ------------------------------------------------------------------ item 12: progress in a CI log

    [Fact]
    public void Outside_a_terminal_progress_is_timestamped_lines_on_stderr_with_a_heartbeat()
    {
        var dir = TestPaths.TempDir("gate-progress");
        var policy = AuditTestKit.WritePolicy(dir, withSandboxCheck: true);
        var r = GateProcess.Run(["check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", Path.Combine(dir, "out"), "--sandbox", "process", "--json"],
            new Dictionary<string, string> { ["GATE_PROGRESS_INTERVAL"] = "0.05" }, TimeSpan.FromMinutes(3));
        Assert.True(r.ExitCode is >= 0 and <= 2, r.All);
        JsonNode.Parse(r.Stdout); // stdout is the decision only
        var lines = r.Stderr.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        const string stamp = @"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ gate: ";
        Assert.Contains(lines, l => Regex.IsMatch(l, stamp + "check graph started$"));
        Assert.Contains(lines, l => Regex.IsMatch(l, stamp + @"check graph finished: PASS in \d+\.\d s$"));
        Assert.Contains(lines, l => Regex.IsMatch(l, stamp + "check acc started$"));
        Assert.Contains(lines, l => Regex.IsMatch(l, stamp + @"check acc finished: (PASS|FAIL|INCONCLUSIVE) in \d+\.\d s$"));
        Assert.Contains(lines, l => Regex.IsMatch(l, stamp + @"still working \(\d+ s\): "));
        Assert.True(lines.FindIndex(l => l.EndsWith("check graph started")) < lines.FindIndex(l => l.EndsWith("check acc started")));
    }

    [Fact]
    public void The_heartbeat_names_the_check_at_work_and_how_far_it_is()
    {
        var log = new StringWriter();
        using (var lines = new Gate.Cli.ProgressLines(log, TimeSpan.FromMilliseconds(20)))
        {
            lines.Report(Gate.Core.Evidence.ProgressUpdate.Started("robustness"));
            lines.Report(new Gate.Core.Evidence.ProgressUpdate("robustness", "pgd", 1200, 8000, "queries"));
            var until = Stopwatch.StartNew();
            while (!log.ToString().Contains("queries (15%)") && until.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(10);
        }
        Assert.Contains("check robustness started", log.ToString());
        Assert.Matches(@"still working \(\d+ s\): check robustness: pgd 1200/8000 queries \(15%\)", log.ToString());
    }

    // ------------------------------------------------------------------ helpers

    private static Process StartGate(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = TestPaths.RepoRoot };
        psi.ArgumentList.Add(GateProcess.GateDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static ProcessResult RunProcess(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = TestPaths.RepoRoot };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["COLUMNS"] = "200";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3))) { p.Kill(entireProcessTree: true); throw new TimeoutException($"{file} {string.Join(' ', args)}"); }
        p.WaitForExit();
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}
