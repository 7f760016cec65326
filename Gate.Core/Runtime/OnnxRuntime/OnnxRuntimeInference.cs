using System.Collections.Concurrent;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// ONNX Runtime as an <see cref="IInferenceRuntime"/> ("onnxruntime"): the production runtime for black-box
/// queries and for confirming counterexamples. Constructing it loads nothing; the native library is loaded by the
/// first <see cref="Load"/>.
/// </summary>
public sealed class OnnxRuntimeInference(OrtGraphOptimization optimization = OrtGraphOptimization.All, int interOpThreads = 0) : IInferenceRuntime
{
    public const string RuntimeName = "onnxruntime";
    public string Name => RuntimeName;

    public IInferenceSession Load(OnnxModel model, RuntimeOptions options)
    {
        var settings = new OrtSessionSettings(options.IntraOpThreads, interOpThreads, optimization, UseCuda: options.UseGpu || options.RequireGpu,
            FlushDenormals: options.FlushDenormals);
        var session = Session.Open(model, settings);
        if (options.RequireGpu && session.Info.Provider != OrtSession.CudaProvider)
        {
            var reason = session.Info.FallbackReason ?? "the CUDA execution provider is not in use";
            session.Dispose();
            // Fail closed: a GPU was required, so the checks that need this runtime must not run on the CPU instead.
            throw new GateComponentMissingException($"gpu: required, but ONNX Runtime cannot run on a GPU here: {reason}");
        }
        return session;
    }

    /// <summary>
    /// <c>gate run</c> on a model with sequence or optional inputs or outputs: through ORT's C API
    /// (<see cref="OrtNativeSession.RunValues"/>), on the CPU, keeping IEEE subnormals. Not through the managed API:
    /// its OrtValue asks an optional output that holds none for its type, and ONNX Runtime 1.31.1 segfaults there.
    /// </summary>
    internal static IReadOnlyDictionary<string, ModelValue> RunValues(OnnxModel model, IReadOnlyDictionary<string, ModelValue> inputs, IReadOnlyList<string> outputs)
    {
        var extra = outputs.Where(n => !model.Graph.Outputs.Any(o => o.Name == n)).Distinct().ToList();
        if (extra.Count > 0 && model.Graph.ExternalData.Count > 0)
            throw new GateInputException($"{model.FileName}: capturing intermediates with ONNX Runtime is not supported for models with external data");
        var bytes = extra.Count > 0 ? OrtModelOutputs.WithExtraOutputs(model, extra) : model.Bytes;
        OrtNativeSession session;
        try { session = new OrtNativeSession(bytes, model.Graph.ExternalData.Count > 0 ? model.SourcePath : null, new OrtSessionSettings(FlushDenormals: false)); }
        catch (OrtCallException e) { throw new GateInputException($"{model.FileName}: ONNX Runtime {OrtLibrary.Version} rejected the model: {e.Message}", e); }
        using (session) return Platform.FloatingPointEnvironment.WithDenormalsKept(() => session.RunValues(inputs, outputs));
    }

    private sealed class Session : IInferenceSession
    {
        private readonly OnnxModel model;
        private readonly OrtSessionSettings settings;
        private readonly OrtSession main;
        /// <summary>Sessions over the model with extra graph outputs, one per set of requested intermediates.</summary>
        private readonly ConcurrentDictionary<string, Lazy<OrtSession>> withCaptures = new(StringComparer.Ordinal);

        private Session(OnnxModel model, OrtSessionSettings settings, OrtSession main)
        {
            this.model = model;
            this.settings = settings;
            this.main = main;
            // Pool threads flush by ORT's session option, the calling thread by OrtSession.Run; on a GPU, or where
            // the thread's mode cannot be set, flushing is not guaranteed and so not recorded as done.
            Info = new RuntimeInfo(RuntimeName, OrtLibrary.Version, main.Provider,
                main.Provider == OrtSession.CudaProvider ? $"cuda:{settings.CudaDeviceId}" : "cpu", main.FallbackReason) { FlushDenormals = main.FlushesDenormals };
            InputNames = main.Inputs.Select(i => i.Name).ToList();
            OutputNames = main.Outputs.Select(o => o.Name).ToList();
        }

        public static Session Open(OnnxModel model, OrtSessionSettings settings) => new(model, settings, Create(model, model.Bytes, settings));

        private static OrtSession Create(OnnxModel model, byte[] bytes, OrtSessionSettings settings) =>
            // Weights in external files are resolved by ORT relative to the model file, so such models load by path.
            model.Graph.ExternalData.Count > 0 && ReferenceEquals(bytes, model.Bytes)
                ? OrtSession.Create(bytes, model.FileName, settings, model.SourcePath)
                : OrtSession.Create(bytes, model.FileName, settings);

        public RuntimeInfo Info { get; }
        public IReadOnlyList<string> InputNames { get; }
        public IReadOnlyList<string> OutputNames { get; }

        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputs = null)
        {
            var requested = outputs ?? OutputNames;
            var extra = requested.Where(n => !OutputNames.Contains(n)).Distinct().Order(StringComparer.Ordinal).ToList();
            if (extra.Count == 0) return main.Run(inputs, requested);
            if (model.Graph.ExternalData.Count > 0)
                throw new GateInputException($"{model.FileName}: capturing intermediates with ONNX Runtime is not supported for models with external data");
            var key = string.Join("\n", extra);
            var session = withCaptures.GetOrAdd(key, _ => new Lazy<OrtSession>(
                () => OrtSession.Create(OrtModelOutputs.WithExtraOutputs(model, extra), model.FileName, settings))).Value;
            return session.Run(inputs, requested);
        }

        public void Dispose()
        {
            main.Dispose();
            foreach (var s in withCaptures.Values) if (s.IsValueCreated) s.Value.Dispose();
        }
    }
}
