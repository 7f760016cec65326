using Gate.Core.Platform;
using Gate.Core.Tensors;
using Microsoft.ML.OnnxRuntime;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>ORT's GraphOptimizationLevel.</summary>
public enum OrtGraphOptimization { Disabled = 0, Basic = 1, Extended = 2, All = 99 }

/// <summary>How an ORT session is built. Zero thread counts mean ORT's defaults.</summary>
public sealed record OrtSessionSettings(
    int IntraOpThreads = 0,
    int InterOpThreads = 0,
    OrtGraphOptimization Optimization = OrtGraphOptimization.All,
    bool UseCuda = false,
    int CudaDeviceId = 0,
    bool FlushDenormals = true);

/// <summary>A graph input or output as ORT sees it: element type (null for non-tensors) and shape (-1 = dynamic).</summary>
public sealed record OrtValueInfo(string Name, DType? ElementType, int[]? Shape);

/// <summary>
/// One ORT inference session (the official managed API) over model bytes, with Gate's rules around it: a model ORT
/// rejects is the user's input error, a GPU that cannot be used is a recorded fallback with ORT's own reason. ORT's
/// Run is thread-safe and this wrapper keeps no per-run state, so one instance may be used from several threads.
/// </summary>
public sealed class OrtSession : IDisposable
{
    public const string CpuProvider = "CPUExecutionProvider";
    public const string CudaProvider = "CUDAExecutionProvider";

    /// <summary>The managed API's session, or null when the model needed <see cref="native"/>.</summary>
    private readonly InferenceSession? session;
    private readonly OrtNativeSession? native;

    public IReadOnlyList<OrtValueInfo> Inputs { get; }
    public IReadOnlyList<OrtValueInfo> Outputs { get; }
    /// <summary>The execution provider the session was built with (CUDA, or CPU).</summary>
    public string Provider { get; }
    /// <summary>Why CUDA was asked for but not used; null when nothing fell back.</summary>
    public string? FallbackReason { get; }

    private OrtSession(InferenceSession session, string provider, string? fallback, bool flush)
    {
        this.session = session;
        this.flush = flush;
        Provider = provider;
        FallbackReason = fallback;
        Inputs = session.InputNames.Select(n => Info(n, session.InputMetadata[n])).ToList();
        Outputs = session.OutputNames.Select(n => Info(n, session.OutputMetadata[n])).ToList();
        optionalOutputs = session.OutputNames.Where(n => session.OutputMetadata[n].OnnxValueType == OnnxValueType.ONNX_TYPE_OPTIONAL).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>
    /// Outputs of optional type. The managed API's OrtValue asks every output for its type, and ONNX Runtime 1.31.1
    /// dereferences null when asked about an optional that holds none (a segfault, measured): such outputs are never
    /// fetched through it. gate run reads them through the C API (<see cref="OrtNativeSession.RunValues"/>).
    /// </summary>
    private readonly HashSet<string> optionalOutputs = [];

    private OrtSession(OrtNativeSession native, string? fallback, bool flush)
    {
        this.native = native;
        this.flush = flush;
        Provider = CpuProvider;
        FallbackReason = fallback;
        Inputs = native.Inputs;
        Outputs = native.Outputs;
    }

    private static OrtValueInfo Info(string name, NodeMetadata m) =>
        m.IsTensor ? new OrtValueInfo(name, (DType)(int)m.ElementDataType, m.Dimensions.ToArray()) : new OrtValueInfo(name, null, null);

    /// <summary>
    /// Builds a session from serialized model bytes (or from <paramref name="modelPath"/> when the model keeps its
    /// weights in external files that ORT must resolve relative to the model). A model ORT rejects raises
    /// <see cref="GateInputException"/> with ORT's message; a missing library raises <see cref="GateComponentMissingException"/>.
    /// </summary>
    public static OrtSession Create(byte[] modelBytes, string displayName, OrtSessionSettings settings, string? modelPath = null)
    {
        _ = OrtLibrary.Env; // first: options and providers log through it (see OrtLibrary.Env)
        string? fallback = null;
        if (settings.UseCuda)
        {
            using var cudaOptions = Options(settings);
            fallback = TryAppendCuda(cudaOptions, settings.CudaDeviceId);
            if (fallback is null)
            {
                try { return new OrtSession(Open(modelBytes, modelPath, cudaOptions), CudaProvider, null, settings.FlushDenormals); }
                catch (OnnxRuntimeException e)
                {
                    // The CUDA provider can also fail while the session initialises (cuDNN missing, no device, out of
                    // memory). Whether the model itself is at fault is decided by the CPU attempt below.
                    fallback = $"{CudaProvider} failed while creating the session: {e.Message.TrimEnd()}";
                }
            }
        }
        using var cpuOptions = Options(settings);
        try { return new OrtSession(Open(modelBytes, modelPath, cpuOptions), CpuProvider, fallback, settings.FlushDenormals); }
        catch (OnnxRuntimeException e) when (e.Message.Contains(UnregisteredType, StringComparison.Ordinal))
        {
            // An input or output of a narrow type (float8, float4, int4, int2): the managed API cannot describe it,
            // ORT itself can. Such models run through ORT's C API, on the CPU.
            try
            {
                return new OrtSession(new OrtNativeSession(modelBytes, modelPath, settings),
                    settings.UseCuda ? $"{CudaProvider} not used: the model has inputs or outputs of a narrow element type, which Gate passes to ONNX Runtime through its C API on the CPU" : fallback, settings.FlushDenormals);
            }
            catch (OrtCallException n)
            {
                throw new GateInputException($"{displayName}: ONNX Runtime {OrtLibrary.Version} rejected the model: {n.Message}", n);
            }
        }
        catch (OnnxRuntimeException e)
        {
            throw new GateInputException($"{displayName}: ONNX Runtime {OrtLibrary.Version} rejected the model: {e.Message}", e);
        }
    }

    /// <summary>The managed API's words for an element type outside its table (float8 and the packed types).</summary>
    private const string UnregisteredType = "Unregistered TensorElementType";

    /// <summary>Creates the session without letting ORT's first-session flush-to-zero leak into this thread (see
    /// <see cref="FloatingPointEnvironment"/>).</summary>
    private static InferenceSession Open(byte[] modelBytes, string? modelPath, SessionOptions options) =>
        FloatingPointEnvironment.Preserving(() => modelPath is not null ? new InferenceSession(modelPath, options) : new InferenceSession(modelBytes, options));

    /// <summary>ONNX Runtime's session option that flushes subnormals to zero (FTZ + DAZ on its worker threads; the
    /// calling thread, which computes too, is flushed by <see cref="Run"/> for the call).</summary>
    public const string DenormalAsZeroKey = "session.set_denormal_as_zero";

    /// <summary>Whether every thread that computes a CPU run flushes subnormals: ORT's pool threads by the session
    /// option, the calling thread by <see cref="Run"/>. Recorded as runtime.flushDenormals.</summary>
    public bool FlushesDenormals => flush && Provider == CpuProvider && FloatingPointEnvironment.CanFlushDenormals;

    /// <summary>Whether this session was asked to flush (<see cref="OrtSessionSettings.FlushDenormals"/>).</summary>
    private readonly bool flush;

    private static SessionOptions Options(OrtSessionSettings settings)
    {
        var options = new SessionOptions { GraphOptimizationLevel = (GraphOptimizationLevel)(int)settings.Optimization, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL };
        if (settings.IntraOpThreads > 0) options.IntraOpNumThreads = settings.IntraOpThreads;
        if (settings.InterOpThreads > 0) options.InterOpNumThreads = settings.InterOpThreads;
        // Subnormal numbers cost 5-20x per operation on x86 (a digits CNN with 227 subnormal weights: 4.4 vs 0.33 ms
        // per batch); flush-to-zero changes results by at most ~1.2e-38 per value. Recorded as runtime.flushDenormals.
        options.AddSessionConfigEntry(DenormalAsZeroKey, settings.FlushDenormals ? "1" : "0");
        return options;
    }

    /// <summary>
    /// Appends the CUDA execution provider; returns null on success, else why it could not be used, in ORT's words
    /// (this library has no CUDA provider; or loading it failed: no driver, a missing libcudart/libcublas/libcudnn).
    /// </summary>
    internal static string? TryAppendCuda(SessionOptions options, int deviceId)
    {
        var available = OrtLibrary.AvailableProviders();
        if (!available.Contains(CudaProvider))
            return $"{CudaProvider} is not in this ONNX Runtime ({OrtLibrary.LibraryPath}, providers: {string.Join(", ", available)}); " +
                   $"build Gate with -p:GateGpu=true (docs/gpu.md) or set {OrtLibrary.PathVariable} to a CUDA-enabled libonnxruntime.so";
        try
        {
            using var cuda = new OrtCUDAProviderOptions();
            cuda.UpdateOptions(new Dictionary<string, string>
            {
                ["device_id"] = deviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["cudnn_conv_algo_search"] = "HEURISTIC", // exhaustive search is slow and non-deterministic
                ["do_copy_in_default_stream"] = "1",      // 0 may race, per ORT's docs
            });
            options.AppendExecutionProvider_CUDA(cuda);
            return null;
        }
        catch (OnnxRuntimeException e)
        {
            return $"{CudaProvider} could not be used: {e.Message.TrimEnd()}";
        }
    }

    /// <summary>Runs the session on named inputs and returns the named outputs (all outputs when null).</summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputNames = null)
    {
        // The managed API does not guard a disposed session: running one would reach freed native memory.
        ObjectDisposedException.ThrowIf(disposed, this);
        outputNames ??= Outputs.Select(o => o.Name).ToList();
        foreach (var name in inputs.Keys)
            if (!Inputs.Any(i => i.Name == name))
                throw new GateInputException($"input '{name}' is not an input of the model (inputs: {string.Join(", ", Inputs.Select(i => i.Name))})");

        // The calling thread computes its share of the run: in the pool threads' mode, for this call only.
        Func<IReadOnlyDictionary<string, Tensor>> run = () => native is not null ? native.Run(inputs, outputNames) : RunManaged(inputs, outputNames);
        return flush ? FloatingPointEnvironment.WithDenormalsFlushed(run) : FloatingPointEnvironment.WithDenormalsKept(run);
    }

    private IReadOnlyDictionary<string, Tensor> RunManaged(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames)
    {
        if (outputNames.FirstOrDefault(optionalOutputs.Contains) is { } optional)
            throw new GateInputException($"output '{optional}' is an optional; Gate reads optional outputs only in gate run (ONNX Runtime {OrtLibrary.Version}'s managed API crashes on one that holds none)");
        var values = new List<OrtValue>(inputs.Count);
        try
        {
            foreach (var (name, t) in inputs) values.Add(OrtTensorMarshal.ToOrtValue(name, t));
            using var runOptions = new RunOptions();
            IDisposableReadOnlyCollection<OrtValue> outputs;
            try { outputs = session!.Run(runOptions, inputs.Keys.ToList(), values, outputNames.ToList()); }
            catch (OnnxRuntimeException e) when (e.Message.Contains("[ErrorCode:InvalidArgument]", StringComparison.Ordinal))
            {
                // Wrong input names, shapes or types are the caller's input error, reported with ORT's words.
                throw new GateInputException($"ONNX Runtime refused the inputs: {e.Message}", e);
            }
            using (outputs)
            {
                var result = new Dictionary<string, Tensor>(outputNames.Count, StringComparer.Ordinal);
                for (int i = 0; i < outputNames.Count; i++) result[outputNames[i]] = OrtTensorMarshal.ToTensor(outputs[i], outputNames[i]);
                return result;
            }
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private volatile bool disposed;

    public void Dispose()
    {
        disposed = true;
        session?.Dispose();
        native?.Dispose();
    }
}
