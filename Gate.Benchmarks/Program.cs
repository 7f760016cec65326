using BenchmarkDotNet.Running;
using Gate.Benchmarks;

// Usage: dotnet run -c Release --project Gate.Benchmarks -- --filter '*' [--job short]
//        dotnet run -c Release --project Gate.Benchmarks -- trojan-scan MODELS_DIR DATA_DIR OUT.jsonl   (scripts/trojan/README.md)
if (args is ["trojan-scan", ..]) return TrojanScanBenchmark.Run(args);
// The ONNX Runtime benchmarks join automatically once the ORT binding sets ProductionRuntime.OnnxRuntimeFactory.
var types = new List<Type> { typeof(EngineBenchmarks) };
if (OnnxRuntimeBenchmarks.Unavailable() is { } why) Console.WriteLine($"Skipping ONNX Runtime benchmarks: {why}");
else types.Add(typeof(OnnxRuntimeBenchmarks));
BenchmarkSwitcher.FromTypes(types.ToArray()).Run(args);
return 0;
