using System.Runtime.InteropServices;
using System.Text;
using Gate.Core.Tensors;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>ORT's GraphOptimizationLevel.</summary>
public enum OrtGraphOptimization { Disabled = 0, Basic = 1, Extended = 2, All = 99 }

/// <summary>How an ORT session is built. Zero thread counts mean ORT's defaults.</summary>
public sealed record OrtSessionSettings(
    int IntraOpThreads = 0,
    int InterOpThreads = 0,
    OrtGraphOptimization Optimization = OrtGraphOptimization.All,
    bool UseCuda = false,
    int CudaDeviceId = 0);

/// <summary>A graph input or output as ORT sees it: element type (null for non-tensors) and shape (-1 = dynamic).</summary>
public sealed record OrtValueInfo(string Name, DType? ElementType, int[]? Shape);

/// <summary>
/// One ORT inference session over model bytes. ORT's Run is thread-safe, and this wrapper keeps no per-run state,
/// so one instance may be used from several threads at once.
/// </summary>
public sealed unsafe class OrtSession : IDisposable
{
    public const string CpuProvider = "CPUExecutionProvider";
    public const string CudaProvider = "CUDAExecutionProvider";

    private readonly OrtSessionHandle handle;
    private readonly OrtApi api;

    public IReadOnlyList<OrtValueInfo> Inputs { get; }
    public IReadOnlyList<OrtValueInfo> Outputs { get; }
    /// <summary>The execution provider the session was built with (CUDA, or CPU).</summary>
    public string Provider { get; }
    /// <summary>Why CUDA was asked for but not used; null when nothing fell back.</summary>
    public string? FallbackReason { get; }

    private OrtSession(OrtApi api, OrtSessionHandle handle, string provider, string? fallback)
    {
        this.api = api;
        this.handle = handle;
        Provider = provider;
        FallbackReason = fallback;
        using var s = handle.Borrow();
        Inputs = ReadInfos(s.Pointer, isInput: true);
        Outputs = ReadInfos(s.Pointer, isInput: false);
    }

    /// <summary>
    /// Builds a session from serialized model bytes (or from <paramref name="modelPath"/> when the model keeps its
    /// weights in external files that ORT must resolve relative to the model). A model ORT rejects raises
    /// <see cref="GateInputException"/> with ORT's message; a missing library raises <see cref="GateComponentMissingException"/>.
    /// </summary>
    public static OrtSession Create(byte[] modelBytes, string displayName, OrtSessionSettings settings, string? modelPath = null)
    {
        var api = OrtLibrary.Api;
        string? fallback = null;
        if (settings.UseCuda)
        {
            using var cudaOptions = BuildOptions(api, settings, out fallback);
            if (fallback is null)
            {
                try { return new OrtSession(api, CreateHandle(api, cudaOptions, modelBytes, modelPath), CudaProvider, null); }
                catch (OrtException e)
                {
                    // The CUDA provider can also fail while the session initialises (cuDNN missing, no device, out of
                    // memory). Whether the model itself is at fault is decided by the CPU attempt below.
                    fallback = $"{CudaProvider} failed while creating the session: {e.Message}";
                }
            }
        }
        using var cpuOptions = BuildOptions(api, settings with { UseCuda = false }, out _);
        try { return new OrtSession(api, CreateHandle(api, cpuOptions, modelBytes, modelPath), CpuProvider, fallback); }
        catch (OrtException e)
        {
            throw new GateInputException($"{displayName}: ONNX Runtime {api.Version} rejected the model: {e.Message}", e);
        }
    }

    /// <summary>Session options for <paramref name="settings"/>; <paramref name="cudaFallback"/> is why CUDA was not appended (null if it was or was not asked for).</summary>
    private static OrtSessionOptionsHandle BuildOptions(OrtApi api, OrtSessionSettings settings, out string? cudaFallback)
    {
        var options = new OrtSessionOptionsHandle();
        nint raw;
        api.Check(api.CreateSessionOptions(&raw));
        options.Attach(raw);
        cudaFallback = null;
        using var o = options.Borrow();
        api.Check(api.SetSessionGraphOptimizationLevel(o.Pointer, (int)settings.Optimization));
        if (settings.IntraOpThreads > 0) api.Check(api.SetIntraOpNumThreads(o.Pointer, settings.IntraOpThreads));
        if (settings.InterOpThreads > 0) api.Check(api.SetInterOpNumThreads(o.Pointer, settings.InterOpThreads));
        if (settings.UseCuda) cudaFallback = TryAppendCuda(api, o.Pointer, settings.CudaDeviceId);
        return options;
    }

    private static OrtSessionHandle CreateHandle(OrtApi api, OrtSessionOptionsHandle options, byte[] modelBytes, string? modelPath)
    {
        nint raw;
        using (var env = OrtEnvironment.Env.Borrow())
        using (var o = options.Borrow())
        {
            if (modelPath is not null)
            {
                fixed (byte* p = Encoding.UTF8.GetBytes(modelPath + "\0"))
                    api.Check(api.CreateSession(env.Pointer, p, o.Pointer, &raw));
            }
            else
            {
                fixed (byte* data = modelBytes)
                    api.Check(api.CreateSessionFromArray(env.Pointer, data, (nuint)modelBytes.Length, o.Pointer, &raw));
            }
        }
        var session = new OrtSessionHandle();
        session.Attach(raw);
        return session;
    }

    /// <summary>
    /// Appends the CUDA execution provider; returns null on success, else why it could not be used (this library has
    /// no CUDA provider, or ORT failed to load it: no driver, no libcudart, no device).
    /// </summary>
    private static string? TryAppendCuda(OrtApi api, nint options, int deviceId)
    {
        var available = api.AvailableProviders();
        if (!available.Contains(CudaProvider))
            return $"{CudaProvider} is not compiled into {api.LibraryPath} (available: {string.Join(", ", available)}); " +
                   $"set {OrtLibrary.PathVariable} to a CUDA-enabled ONNX Runtime build";
        // OrtCUDAProviderOptions (legacy struct). It has grown over releases; a zeroed oversized buffer keeps the
        // fields added after the ones set here at their documented zero defaults.
        var buffer = stackalloc byte[256];
        new Span<byte>(buffer, 256).Clear();
        *(int*)(buffer + 0) = deviceId;             // device_id
        *(int*)(buffer + 4) = 1;                    // cudnn_conv_algo_search = Heuristic (exhaustive search is slow and non-deterministic)
        *(nuint*)(buffer + 8) = nuint.MaxValue;     // gpu_mem_limit = SIZE_MAX
        *(int*)(buffer + 16) = 0;                   // arena_extend_strategy = kNextPowerOfTwo
        *(int*)(buffer + 20) = 1;                   // do_copy_in_default_stream (0 may race, per ORT's docs)
        try
        {
            api.Check(api.AppendExecutionProviderCuda(options, buffer));
            return null;
        }
        catch (OrtException e)
        {
            // ORT's message here is terse ("Failed to load shared library"); name the files it looks for.
            var dir = Path.GetDirectoryName(api.LibraryPath) ?? ".";
            var missing = new[] { "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so" }
                .Where(f => !File.Exists(Path.Combine(dir, f))).ToList();
            var hint = missing.Count > 0 ? $" ({string.Join(" and ", missing)} not found beside {api.LibraryPath})" : "";
            return $"{CudaProvider} could not be used: {e.Message}{hint}";
        }
    }

    private IReadOnlyList<OrtValueInfo> ReadInfos(nint session, bool isInput)
    {
        nuint count;
        api.Check(isInput ? api.SessionGetInputCount(session, &count) : api.SessionGetOutputCount(session, &count));
        var allocator = OrtEnvironment.DefaultAllocator;
        var list = new List<OrtValueInfo>((int)count);
        for (nuint i = 0; i < count; i++)
        {
            byte* namePtr;
            api.Check(isInput ? api.SessionGetInputName(session, i, allocator, &namePtr) : api.SessionGetOutputName(session, i, allocator, &namePtr));
            string name;
            try { name = Marshal.PtrToStringUTF8((nint)namePtr) ?? ""; }
            finally { api.Check(api.AllocatorFree(allocator, namePtr)); }

            nint typeInfo;
            api.Check(isInput ? api.SessionGetInputTypeInfo(session, i, &typeInfo) : api.SessionGetOutputTypeInfo(session, i, &typeInfo));
            try
            {
                int onnxType;
                api.Check(api.GetOnnxTypeFromTypeInfo(typeInfo, &onnxType));
                if (onnxType != 1) { list.Add(new OrtValueInfo(name, null, null)); continue; }
                nint tensorInfo; // owned by typeInfo
                api.Check(api.CastTypeInfoToTensorInfo(typeInfo, &tensorInfo));
                int et;
                api.Check(api.GetTensorElementType(tensorInfo, &et));
                list.Add(new OrtValueInfo(name, (DType)et, OrtTensorMarshal.Dimensions(api, tensorInfo, name)));
            }
            finally { api.Release(OrtApiSlot.ReleaseTypeInfo, typeInfo); }
        }
        return list;
    }

    /// <summary>Runs the session on named inputs and returns the named outputs (all outputs when null).</summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputNames = null)
    {
        outputNames ??= Outputs.Select(o => o.Name).ToList();
        foreach (var name in inputs.Keys)
            if (!Inputs.Any(i => i.Name == name))
                throw new GateInputException($"input '{name}' is not an input of the model (inputs: {string.Join(", ", Inputs.Select(i => i.Name))})");

        var pinned = new List<OrtTensorMarshal.PinnedInput>(inputs.Count);
        var inNames = new List<nint>();
        var outNames = new List<nint>();
        var outValues = new nint[outputNames.Count];
        try
        {
            foreach (var (name, t) in inputs)
            {
                pinned.Add(new OrtTensorMarshal.PinnedInput(name, t));
                inNames.Add(Marshal.StringToCoTaskMemUTF8(name));
            }
            foreach (var name in outputNames) outNames.Add(Marshal.StringToCoTaskMemUTF8(name));

            var inValues = new nint[pinned.Count];
            var leases = new bool[pinned.Count];
            try
            {
                for (int i = 0; i < pinned.Count; i++)
                {
                    pinned[i].Value.DangerousAddRef(ref leases[i]);
                    inValues[i] = pinned[i].Value.DangerousGetHandle();
                }
                using var s = handle.Borrow();
                var inNameArr = inNames.ToArray();
                var outNameArr = outNames.ToArray();
                fixed (nint* inN = inNameArr)
                fixed (nint* inV = inValues)
                fixed (nint* outN = outNameArr)
                fixed (nint* outV = outValues)
                {
                    try
                    {
                        api.Check(api.Run(s.Pointer, 0, (byte**)inN, inV, (nuint)inValues.Length, (byte**)outN, (nuint)outValues.Length, outV));
                    }
                    catch (OrtException e) when (e.Code == OrtErrorCode.InvalidArgument)
                    {
                        // Wrong input names, shapes or types are the caller's input error, reported with ORT's words.
                        throw new GateInputException($"ONNX Runtime refused the inputs: {e.Message}", e);
                    }
                }
            }
            finally
            {
                for (int i = 0; i < pinned.Count; i++) if (leases[i]) pinned[i].Value.DangerousRelease();
            }

            var result = new Dictionary<string, Tensor>(outputNames.Count, StringComparer.Ordinal);
            for (int i = 0; i < outValues.Length; i++)
                result[outputNames[i]] = OrtTensorMarshal.ToTensor(api, outValues[i], outputNames[i]);
            return result;
        }
        finally
        {
            foreach (var v in outValues) if (v != 0) api.Release(OrtApiSlot.ReleaseValue, v);
            foreach (var p in inNames) Marshal.FreeCoTaskMem(p);
            foreach (var p in outNames) Marshal.FreeCoTaskMem(p);
            foreach (var p in pinned) p.Dispose();
        }
    }

    public void Dispose() => handle.Dispose();
}
