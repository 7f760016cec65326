using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Plan;
using Gate.Core.Runtime;
using Gate.Core.IO;

namespace Gate.Sandbox.Protocol;

/// <summary>
/// The job as the runner reads it from its read-only job folder (job.json). Every path is relative to that folder,
/// so the same manifest works at /job in a container and in a staging folder for the process backend.
/// </summary>
public sealed record JobManifest
{
    public const string FileName = "job.json";
    public const string KindChecks = "checks";
    public const string KindSelfTest = "selftest";
    /// <summary><c>gate run</c>: run the model on <see cref="Inputs"/>, write every output and capture as evidence.</summary>
    public const string KindRun = "run";
    /// <summary>The one result a run job returns; its evidence files are the tensors.</summary>
    public const string RunResultId = "run";

    public string Kind { get; init; } = KindChecks;
    public string Model { get; init; } = "";
    public string ModelSha256 { get; init; } = "";
    /// <summary>Checks jobs: the plan the host bound, its data paths relative to the job folder. No policy file is staged.</summary>
    public BoundPlan? Plan { get; init; }
    public bool UseGpu { get; init; }
    public bool RequireGpu { get; init; }
    public SelfTestRequest? SelfTest { get; init; }
    /// <summary>
    /// Fault-injection hook for the fault tests (crash, oom, hang, garbage, truncated). The runner honours it only
    /// when it was started with GATE_RUNNER_FAULTS=1, which only a backend built with fault injection enabled
    /// (tests) passes; a manifest alone cannot trigger it.
    /// </summary>
    public string? Fault { get; init; }
    /// <summary>Run jobs: model input name → relative path of its staged .npy.</summary>
    public Dictionary<string, string> Inputs { get; init; } = new(StringComparer.Ordinal);
    /// <summary>Run jobs: intermediate tensors to return besides the outputs.</summary>
    public List<string> Captures { get; init; } = [];
    /// <summary>Run jobs: builtin, onnxruntime or torch.</summary>
    public string Runtime { get; init; } = "builtin";
    /// <summary>Run jobs: also return each float input's gradient (<see cref="Gate.Core.Sandbox.ModelRunJob.InputGradients"/>).</summary>
    public bool InputGradients { get; init; }
}

/// <summary>
/// What the self-test probes: a loopback listener the host opened, an outside address, the host's canary variable.
/// <paramref name="Nonce"/> is fresh per self-test and must come back in the report: a canned report does not pass.
/// </summary>
public sealed record SelfTestRequest(string LoopbackHost, int LoopbackPort, string OutsideHost, int OutsidePort,
    string CanaryName, string CanaryValue, int PidsLimit, string Nonce = "");

/// <summary>
/// results.json: written by the runner (temp file + rename) as its last act. A checks job's results are not in it:
/// each check has a file of its own (<see cref="CheckFile"/>) with a cap of its own, so one check whose result is
/// too large ends INCONCLUSIVE alone instead of voiding the run. Run and self-test jobs keep their one result here.
/// </summary>
public sealed class RunnerResults
{
    public const string FileName = "results.json";
    /// <summary>The n-th check of the plan's result, relative to the results folder. Named by position, never by id, so no id becomes a path.</summary>
    public static string CheckFile(int index) => $"checks/{index}.json";
    public bool Completed { get; init; }
    public string? Error { get; init; }
    /// <summary>The failure was the job's input (model, tensors, names), not the sandbox: <c>gate run</c> exits 3 for it.</summary>
    public bool InputError { get; init; }
    public List<CheckResult> Results { get; init; } = [];
    public RuntimeInfo? Runtime { get; init; }
    public JsonObject? SelfTest { get; init; }
    /// <summary>Checks jobs: the pass cost measured before the checks ran, for the host's plan estimate (untrusted; <see cref="CostEstimator.Accept"/>).</summary>
    public PassCost? PassCost { get; init; }
}

/// <summary>One line on the runner's stdout. Anything that does not parse as one is treated as a log line.</summary>
public sealed record ProgressLine(string CheckId, string Task, double Done, double Total, string? Unit,
    ProgressPhase Phase = ProgressPhase.Working, Verdict? Verdict = null);

public static class JobProtocol
{
    /// <summary>The decision record's options (camelCase, named floats) so results round-trip into decision.json unchanged.</summary>
    public static JsonSerializerOptions Json => GateJson.Options;

    private static readonly JsonSerializerOptions Compact = GateJson.Compact;

    /// <summary>Lines longer than this are not progress: they are cut and logged, never parsed.</summary>
    public const int MaxLineChars = 16 * 1024;

    public static string ProgressJson(ProgressUpdate u) =>
        JsonSerializer.Serialize(new { progress = new ProgressLine(u.CheckId, u.Task, u.Done, u.Total, u.Unit, u.Phase, u.Verdict) }, Compact);

    public static bool TryParseProgress(string line, out ProgressUpdate update)
    {
        update = default;
        if (line.Length > MaxLineChars || !line.StartsWith("{\"progress\"", StringComparison.Ordinal)) return false;
        try
        {
            var p = JsonNode.Parse(line)?["progress"]?.Deserialize<ProgressLine>(Compact);
            if (p is null || p.CheckId is null || p.Task is null || !double.IsFinite(p.Done) || !double.IsFinite(p.Total)) return false;
            update = new ProgressUpdate(p.CheckId, p.Task, p.Done, p.Total, p.Unit, p.Phase, p.Verdict);
            return true;
        }
        catch (JsonException) { return false; }
    }

    /// <summary>
    /// Writes each check's result to its own file (<see cref="RunnerResults.CheckFile"/>, by position in
    /// <paramref name="checkIds"/>), streamed through a cap: a result over <paramref name="maxBytes"/> is never held
    /// or written whole; an INCONCLUSIVE result saying why takes its place. The host enforces the same cap itself.
    /// </summary>
    public static void WriteCheckResults(string resultsDir, IReadOnlyList<string> checkIds, IEnumerable<CheckResult> results, long maxBytes)
    {
        var position = checkIds.Select((id, i) => (id, i)).ToDictionary(p => p.id, p => p.i, StringComparer.Ordinal);
        foreach (var r in results)
        {
            if (!position.TryGetValue(r.Id, out int index)) throw new InvalidOperationException($"a result for check '{r.Id}', which the plan does not hold");
            var path = Path.Combine(resultsDir, RunnerResults.CheckFile(index));
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var tmp = path + ".tmp";
            try
            {
                using (var capped = new CappedFileStream(tmp, maxBytes)) JsonSerializer.Serialize(capped, r, Json);
            }
            catch (CappedFileStream.CapExceededException)
            {
                var why = $"its result exceeds the per-check cap of {maxBytes >> 20} MiB: lower the check's samples, classes or layers, or split it";
                using var capped = new CappedFileStream(tmp, maxBytes);
                JsonSerializer.Serialize(capped, new CheckResult
                {
                    Id = r.Id, Type = r.Type, Enforcement = r.Enforcement, Verdict = Verdict.Inconclusive, Summary = why, Reasons = [why],
                    Runtime = r.Runtime, DurationSeconds = r.DurationSeconds,
                }, Json);
            }
            File.Move(tmp, path, overwrite: true);
        }
    }

    /// <summary>A new file that refuses to grow past its cap (throws <see cref="CapExceededException"/>), so a huge result is never materialised.</summary>
    private sealed class CappedFileStream(string path, long cap) : FileStream(path, FileMode.Create, FileAccess.Write)
    {
        public sealed class CapExceededException() : IOException("over the cap");
        public override void Write(ReadOnlySpan<byte> buffer) { Check(buffer.Length); base.Write(buffer); }
        public override void Write(byte[] buffer, int offset, int count) { Check(count); base.Write(buffer, offset, count); }
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default) { Check(buffer.Length); return base.WriteAsync(buffer, ct); }
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) { Check(count); return base.WriteAsync(buffer, offset, count, ct); }
        public override void WriteByte(byte value) { Check(1); base.WriteByte(value); }
        private void Check(int more) { if (Position + more > cap) throw new CapExceededException(); }
    }

    public static void WriteJsonAtomic<T>(string path, T value) => Gate.Core.IO.AtomicFile.Write(path, JsonSerializer.SerializeToUtf8Bytes(value, Json));

    public static T ReadJson<T>(string path) where T : class =>
        JsonSerializer.Deserialize<T>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"{Path.GetFileName(path)} is empty (null)");
}
