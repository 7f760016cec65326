using System.CommandLine;
using Gate.Core;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Report;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Cli.Commands;

public static class RunCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The ONNX model to run.", Required = true };
        var input = new Option<string[]>("--input", "-i") { Description = "A model input: NAME=x.npy. Repeat for each input.", Required = true };
        var outDir = new Option<DirectoryInfo>("--output-dir", "-o") { Description = "Where to write one .npy per output and captured tensor (default: ./gate-run)." };
        var capture = new Option<string[]>("--capture") { Description = "Also write this intermediate tensor (by name). Repeatable." };
        var runtime = new Option<string>("--runtime") { Description = "builtin (default) or onnxruntime." };
        var cmd = new Command("run", """
            Run a model on .npy inputs and write every output (and captured intermediates) as .npy.
            Use it to replay a counterexample from evidence/ or to inspect a layer.
            Example: gate run -m model.onnx -i input=evidence/robustness/cex-0003.npy --capture /net/net.1/Relu_output_0
            """) { model, input, outDir, capture, runtime };
        cmd.SetAction((pr, ct) => Cli.Guard(() =>
        {
            var m = OnnxModelLoader.Load(pr.GetValue(model)!.FullName);
            var inputs = Cli.ParsePairs(pr.GetValue(input), "--input").ToDictionary(kv => kv.Key, kv => Npy.Read(kv.Value));
            var dir = pr.GetValue(outDir)?.FullName ?? Path.GetFullPath("gate-run");
            var captures = pr.GetValue(capture) ?? [];
            IReadOnlyDictionary<string, Tensor> values;
            switch (pr.GetValue(runtime) ?? "builtin")
            {
                case "builtin":
                    values = CompiledModel.Compile(m).Forward(inputs, null, captures).Values;
                    break;
                case "onnxruntime":
                {
                    if (ProductionRuntime.OnnxRuntimeFactory is null) throw new GateComponentMissingException("ONNX Runtime is not available in this build of Gate");
                    using var s = ProductionRuntime.OnnxRuntimeFactory().Load(m, new RuntimeOptions());
                    values = s.Run(inputs, s.OutputNames.Concat(captures).Distinct().ToList());
                    break;
                }
                case var other: throw new GateInputException($"--runtime: unknown runtime '{other}' (expected builtin or onnxruntime)");
            }
            Directory.CreateDirectory(dir);
            foreach (var (name, t) in values)
            {
                var file = Path.Combine(dir, SafeName(name) + ".npy");
                Npy.Write(file, t);
                Console.Out.WriteLine($"{SafeText.Line(name)}\t{t}\t{file}"); // tensor names come from the model
            }
            return Task.FromResult(ExitCodes.Approve);
        }));
        return cmd;
    }

    /// <summary>Tensor names like "/net/net.1/Relu_output_0" become safe file names.</summary>
    public static string SafeName(string name)
    {
        var s = new string(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray()).Trim('_', '.');
        return s.Length == 0 ? "tensor" : s;
    }
}
