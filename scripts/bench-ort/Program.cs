// Latency of ONNX Runtime through Gate.Core (`gate` production runtime): median µs per RunSingle call on the digits
// models, intra-op threads 1, after warm-up. Built twice by scripts/bench-ort.sh, against two Gate.Core sources
// (the previous C-API binding and the official managed API), so both are measured by the same code in one run.
using System.Diagnostics;
using System.Globalization;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

string label = args[0], fixtures = args[1], outDir = args[2];
var x = Npy.Read(Path.Combine(fixtures, "data", "digits_test_x.npy"));
var factory = ProductionRuntime.OnnxRuntimeFactory ?? throw new InvalidOperationException("no ONNX Runtime in this Gate.Core");
foreach (var name in new[] { "digits-mlp.onnx", "digits-cnn.onnx" })
{
    var model = OnnxModelLoader.Load(Path.Combine(fixtures, "models", name));
    using var s = factory().Load(model, new RuntimeOptions(IntraOpThreads: 1));
    foreach (var batch in new[] { 1, 64, 360 })
    {
        var xb = x.SliceBatch(0, batch);
        for (int i = 0; i < 20; i++) s.RunSingle(xb);
        var windows = new List<double>();
        for (int w = 0; w < 7; w++)
        {
            int n = 0;
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed.TotalMilliseconds < 150) { s.RunSingle(xb); n++; }
            windows.Add(sw.Elapsed.TotalMicroseconds / n);
        }
        windows.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{label}\t{s.Info.Version}\t{name}\t{batch}\t{windows[3]:F1}"));
        if (batch == 360) Npy.Write(Path.Combine(outDir, $"{label}-{name}.npy"), s.RunSingle(xb));
    }
}
