using System.CommandLine;
using Gate.Core;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Report;
using Gate.Core.Sandbox;
using Gate.Core.Tensors;
using Gate.Sandbox;

namespace Gate.Cli.Commands;

public static class RunCommand
{
    /// <summary>The backends that can run a model for <c>gate run</c>: never in gate's own process.</summary>
    private static readonly string[] Backends = ["auto", "docker", "bubblewrap", "process"];

    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The ONNX model to run.", Required = true };
        var input = new Option<string[]>("--input", "-i") { Description = "A model input: NAME=x.npy (any standard NumPy dtype); a sequence input: NAME=x.npz holding arr_0, arr_1, … in order (np.savez(path, *arrays)). Repeat for each input; an optional input left out is none; a model without inputs needs none." };
        var outDir = new Option<DirectoryInfo>("--output-dir", "-o") { Description = "Where to write one .npy per output and captured tensor, one .npz per sequence output, no file for an optional output that holds none (default: ./gate-run)." };
        var capture = new Option<string[]>("--capture") { Description = "Also write this intermediate tensor (by name). Repeatable." };
        var runtime = new Option<string>("--runtime") { Description = "builtin (default), onnxruntime, or torch (libtorch: runs only in the bubblewrap or Docker sandbox, whose rootfs has the C++ runtime it needs)." };
        var gradients = new Option<bool>("--input-gradients") { Description = "Also write grad_<input>.npy: the gradient of Σ w·y over the first output y, w[i] = ((i mod 7) - 3)/3 (builtin and torch only)." };
        var sandbox = new Option<string>("--sandbox") { Description = $"Sandbox backend: {string.Join(", ", Backends)} (default: auto, the strongest available). The model never runs in gate's own process." };
        var timeout = new Option<string>("--timeout") { Description = "Wall-clock deadline for the run, e.g. 30s, 5m (default: 5m). Past it the sandbox is killed (exit 2)." };
        var cmd = new Command("run", """
            Run a model on .npy inputs and write every output (and captured intermediates) as .npy. Sequences of
            tensors go in and out as .npz (arrays arr_0, arr_1, … in order); an optional that holds none has no file.
            Use it to replay a counterexample from evidence/ or to inspect a layer. The model is untrusted: it runs in
            the same sandbox as gate check's checks (Docker, else bubblewrap, else the process sandbox), with no network, 4 GiB of
            memory and the --timeout deadline; what comes back is validated before it is written.
            Exit codes: 0 outputs written, 2 the sandbox could not run it (crash, deadline, memory; reason printed),
            3 bad input or usage (also a model the runtime rejects), 130/143 cancelled by SIGINT/SIGTERM.
            Example: gate run -m model.onnx -i input=evidence/robustness/cex-0003.npy --capture /net/net.1/Relu_output_0
            """) { model, input, outDir, capture, runtime, gradients, sandbox, timeout };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            // Parsing the model is not executing it: the host reads it for its digest, names and a clear exit 3.
            var modelPath = pr.GetValue(model)!.FullName;
            var m = OnnxModelLoader.Load(modelPath);
            var inputs = Cli.ParsePairs(pr.GetValue(input), "--input");
            foreach (var (name, path) in inputs)
                if (!File.Exists(path)) throw new GateInputException($"--input {name}={path}: no such file");
            var fed = m.Graph.Inputs.Where(i => !m.Graph.Initializers.ContainsKey(i.Name)).Select(i => i.Name).ToList();
            // An optional input given no file is none (ONNX's empty optional).
            var required = m.Graph.Inputs.Where(i => !m.Graph.Initializers.ContainsKey(i.Name) && i.Kind != "optional").Select(i => i.Name).ToList();
            if (inputs.Keys.FirstOrDefault(k => !m.Graph.Inputs.Any(i => i.Name == k)) is { } unknown)
                throw new GateInputException($"--input {unknown}: the model has no input named '{unknown}' (its inputs: {(fed.Count == 0 ? "none" : string.Join(", ", fed))})");
            if (required.FirstOrDefault(k => !inputs.ContainsKey(k)) is { } missing)
                throw new GateInputException($"--input: no value for the model's input '{missing}' (give --input {missing}=FILE.npy)");
            var runtimeName = pr.GetValue(runtime) ?? "builtin";
            if (!ModelRunJob.Runtimes.Contains(runtimeName))
                throw new GateInputException($"--runtime: unknown runtime '{runtimeName}' (expected {string.Join(" or ", ModelRunJob.Runtimes)})");
            var deadline = pr.GetValue(timeout) is { } t
                ? PolicyLoader.ParseDuration(t) is { } d && d > TimeSpan.Zero ? d : throw new GateInputException($"--timeout: '{t}' is not a positive duration (e.g. 30s, 5m)")
                : TimeSpan.FromMinutes(5);
            var requested = pr.GetValue(sandbox) ?? "auto";
            if (!Backends.Contains(requested))
                throw new GateInputException($"--sandbox: '{requested}' cannot run a model for gate run (expected {string.Join(", ", Backends)})");
            if (Sandboxes.Select(requested) is not RunnerBackend backend) throw new GateInputException($"--sandbox {requested}: not a sandbox");

            var dir = pr.GetValue(outDir)?.FullName ?? Path.GetFullPath("gate-run");
            var job = new ModelRunJob(modelPath, m.Sha256, inputs.ToDictionary(kv => kv.Key, kv => Path.GetFullPath(kv.Value)),
                pr.GetValue(capture) ?? [], m.Graph.Outputs.Select(o => o.Name).ToList(), runtimeName, ModelRunJob.LimitsWith(deadline)) { InputGradients = pr.GetValue(gradients) };
            var outcome = await backend.RunModelAsync(job, dir, ct);
            if (outcome.Failure is { } why)
            {
                if (outcome.InputError) throw new GateInputException(why);
                Console.Error.WriteLine($"gate run: the {backend.Name} sandbox could not run the model: {SafeText.Line(why)}");
                return ExitCodes.Inconclusive;
            }
            // A declared output with no file is an optional that holds none; any other missing output is the
            // sandbox's failure, never a silent gap.
            var returned = outcome.Outputs.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
            if (m.Graph.Outputs.FirstOrDefault(o => !returned.Contains(o.Name) && o.Kind != "optional") is { } lost)
            {
                Console.Error.WriteLine($"gate run: the {backend.Name} sandbox returned no value for the model's output '{SafeText.Line(lost.Name)}' ({lost.Type?.ToString() ?? "tensor"})");
                return ExitCodes.Inconclusive;
            }
            foreach (var (name, file) in outcome.Outputs)
                Console.Out.WriteLine($"{SafeText.Line(name)}\t{ModelValue.Read(file)}\t{file}");
            foreach (var o in m.Graph.Outputs.Where(o => !returned.Contains(o.Name)))
                Console.Out.WriteLine($"{SafeText.Line(o.Name)}\tnone\t-");
            return ExitCodes.Approve;
        }));
        return cmd;
    }

    /// <summary>Tensor names like "/net/net.1/Relu_output_0" become safe file names.</summary>
    public static string SafeName(string name) => ModelRunExecutor.SafeName(name);
}
