using Gate.Core.Decision;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Sandbox;
using Gate.Sandbox.Protocol;
using Gate.Sandbox.Runner;

// The in-sandbox runner: reads <job>/job.json (read-only), runs it, streams progress as JSON lines on stdout and
// writes <out>/checks/<n>.json (one per check), <out>/evidence/ and <out>/results.json (temp file + rename, last). Exit 0 = results written,
// 1 = failure recorded in results.json, 2 = usage. Anything else (signal, crash) the host treats as a fault.
// A benchmark aid (scripts/bench-torch.sh), not a job: times one model's passes and prints one JSON line.
if (args.Length > 0 && args[0] == "--bench")
{
    Gate.Core.Engine.WhiteBoxEngines.TorchFactory = Gate.Sandbox.Runner.Torch.TorchEngine.Load;
    return EngineBench.Run(args);
}
string? jobDir = null, outDir = null;
for (int i = 0; i + 1 < args.Length; i += 2)
{
    if (args[i] == "--job") jobDir = args[i + 1];
    else if (args[i] == "--out") outDir = args[i + 1];
}
if (jobDir is null || outDir is null)
{
    Console.Error.WriteLine("usage: Gate.Sandbox.Runner --job DIR --out DIR");
    return 2;
}

var resultsPath = Path.Combine(outDir, RunnerResults.FileName);
// The torch engine exists here only (libtorch loads in the runner's rootfs); engine: auto|torch finds it through this.
Gate.Core.Engine.WhiteBoxEngines.TorchFactory = Gate.Sandbox.Runner.Torch.TorchEngine.Load;
try
{
    var manifest = JobProtocol.ReadJson<JobManifest>(Path.Combine(jobDir, JobManifest.FileName));
    if (manifest.Fault is { } fault && Environment.GetEnvironmentVariable("GATE_RUNNER_FAULTS") == "1")
        return FaultInjection.Run(fault, resultsPath);

    if (manifest.Kind == JobManifest.KindSelfTest)
    {
        var report = SelfTestProbes.Run(manifest.SelfTest ?? throw new InvalidDataException("selftest job without a selfTest request"));
        JobProtocol.WriteJsonAtomic(resultsPath, new RunnerResults { Completed = true, SelfTest = report });
        return 0;
    }

    string In(string rel) => Path.GetFullPath(Path.Combine(jobDir, rel));
    if (manifest.Kind == JobManifest.KindRun)
    {
        var run = ModelRunJobRunner.Run(manifest, In, Path.Combine(outDir, "evidence"));
        JobProtocol.WriteJsonAtomic(resultsPath, new RunnerResults { Completed = true, Results = [run] });
        return 0;
    }
    // The plan as the host bound it: no policy is parsed here. Its model and data digests are re-verified first.
    // (Limits are enforced from outside — cgroups, rlimits; the runner itself has no use for them.)
    var plan = manifest.Plan ?? throw new InvalidDataException("a checks job without a plan");
    Gate.Core.Decision.PassCost? passCost = null;
    var (results, runtime) = await SandboxJobExecutor.RunAsync(plan, In(manifest.Model), In, manifest.UseGpu, manifest.RequireGpu,
        Path.Combine(outDir, "evidence"), new StdoutProgress(), CancellationToken.None, measured: c => passCost = c);
    // Each check's result in a file of its own, under a cap of its own; results.json, last, says the run completed.
    JobProtocol.WriteCheckResults(outDir, plan.CheckIds, results, JobStaging.MaxCheckResultBytes);
    JobProtocol.WriteJsonAtomic(resultsPath, new RunnerResults { Completed = true, Runtime = runtime, PassCost = passCost });
    return 0;
}
catch (Exception e)
{
    // The host shows this reason in the INCONCLUSIVE result; a stack trace helps whoever debugs the runner.
    Console.Error.WriteLine(e);
    // Input errors (a model ONNX Runtime rejects, an unknown tensor name) keep their own message: gate run shows it as exit 3.
    bool inputError = e is Gate.Core.GateInputException or Gate.Core.GateComponentMissingException;
    try { JobProtocol.WriteJsonAtomic(resultsPath, new RunnerResults { Completed = false, InputError = inputError, Error = inputError ? e.Message : $"{e.GetType().Name}: {e.Message}" }); }
    catch (Exception) { return 3; }
    return 1;
}

/// <summary>Progress as one JSON line each on stdout, serialised so lines never interleave.</summary>
internal sealed class StdoutProgress : IProgress<ProgressUpdate>
{
    private readonly object _lock = new();
    public void Report(ProgressUpdate value)
    {
        var line = JobProtocol.ProgressJson(value);
        lock (_lock) { Console.Out.WriteLine(line); Console.Out.Flush(); }
    }
}
