using Gate.Core.Platform;
using System.Runtime.InteropServices;
using System.Text;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// ORT's C API (onnxruntime_c_api.h), for what the official managed API cannot do: describe or exchange tensors of
/// the narrow element types (float8 variants, float4e2m1, int4/uint4, int2/uint2), which its type table does not
/// register ("Unregistered TensorElementType" while a session is opened). The function table comes from the very
/// library the managed API loaded (<see cref="OrtLibrary.LibraryPath"/>, GATE_ORT_LIB included), so both paths
/// run the same ONNX Runtime. The OrtApi struct is append-only, so these positions hold for every release ≥ 1.x
/// that added them; they were counted from the header's declaration order.
/// </summary>
internal static unsafe class OrtCApi
{
    // Positions in struct OrtApi.
    private const int GetErrorMessageSlot = 2, CreateEnvSlot = 3, CreateSessionSlot = 7, CreateSessionFromArraySlot = 8, RunSlot = 9,
        CreateSessionOptionsSlot = 10, SetGraphOptimizationLevelSlot = 23, SetIntraOpNumThreadsSlot = 24, SetInterOpNumThreadsSlot = 25,
        SessionGetInputCountSlot = 30, SessionGetOutputCountSlot = 31, SessionGetInputTypeInfoSlot = 33, SessionGetOutputTypeInfoSlot = 34,
        SessionGetInputNameSlot = 36, SessionGetOutputNameSlot = 37, CreateTensorWithDataAsOrtValueSlot = 49, GetTensorMutableDataSlot = 51,
        CastTypeInfoToTensorInfoSlot = 55, GetOnnxTypeFromTypeInfoSlot = 56, GetTensorElementTypeSlot = 60, GetDimensionsCountSlot = 61,
        GetDimensionsSlot = 62, GetTensorTypeAndShapeSlot = 65, GetValueTypeSlot = 67, CreateCpuMemoryInfoSlot = 69, AllocatorFreeSlot = 76,
        GetAllocatorWithDefaultOptionsSlot = 78, ReleaseStatusSlot = 93, ReleaseMemoryInfoSlot = 94, ReleaseSessionSlot = 95,
        ReleaseValueSlot = 96, ReleaseTypeInfoSlot = 98, ReleaseTensorTypeAndShapeInfoSlot = 99, ReleaseSessionOptionsSlot = 100,
        AddSessionConfigEntrySlot = 130, GetValueSlot = 80, GetValueCountSlot = 81, CreateValueSlot = 82, HasValueSlot = 192;

    /// <summary>The API version requested: old enough for any ORT Gate accepts, new enough for every slot above.</summary>
    private const uint ApiVersion = 16;

    private static readonly Lazy<(nint Table, nint Env)> Loaded = new(Load);
    private static nint* T => (nint*)Loaded.Value.Table;
    internal static nint Env => Loaded.Value.Env;

    private static (nint, nint) Load()
    {
        _ = OrtLibrary.Env; // loads the library (the managed API's resolver, or GATE_ORT_LIB) and sets LibraryPath
        var lib = NativeLibrary.Load(OrtLibrary.LibraryPath);
        var getApiBase = (delegate* unmanaged[Cdecl]<nint*>)NativeLibrary.GetExport(lib, "OrtGetApiBase");
        var apiBase = getApiBase();
        var table = apiBase is null ? null : ((delegate* unmanaged[Cdecl]<uint, nint*>)apiBase[0])(ApiVersion);
        if (table is null) throw new GateComponentMissingException($"{OrtLibrary.LibraryPath}: ONNX Runtime does not provide C API version {ApiVersion}");
        // ORT keeps one environment per process: this returns the managed API's, reference-counted, never released.
        nint env;
        var logId = "gate\0"u8;
        fixed (byte* id = logId)
            Check(((delegate* unmanaged[Cdecl]<int, byte*, nint*, nint>)table[CreateEnvSlot])(4 /* FATAL */, id, &env), table);
        return ((nint)table, env);
    }

    private static void Check(nint status, nint* table)
    {
        if (status == 0) return;
        var message = Marshal.PtrToStringUTF8(((delegate* unmanaged[Cdecl]<nint, nint>)table[GetErrorMessageSlot])(status)) ?? "(no message)";
        ((delegate* unmanaged[Cdecl]<nint, void>)table[ReleaseStatusSlot])(status);
        throw new OrtCallException(message);
    }

    internal static void Check(nint status) => Check(status, T);
    internal static void Release(int slot, nint handle) { if (handle != 0) ((delegate* unmanaged[Cdecl]<nint, void>)T[slot])(handle); }

    internal static void ReleaseSession(nint s) => Release(ReleaseSessionSlot, s);
    internal static void ReleaseValue(nint v) => Release(ReleaseValueSlot, v);

    internal static nint CreateSession(byte[] modelBytes, string? modelPath, OrtSessionSettings settings)
    {
        nint options = 0, session = 0;
        try
        {
            Check(((delegate* unmanaged[Cdecl]<nint*, nint>)T[CreateSessionOptionsSlot])(&options));
            Check(((delegate* unmanaged[Cdecl]<nint, int, nint>)T[SetGraphOptimizationLevelSlot])(options, (int)settings.Optimization));
            if (settings.IntraOpThreads > 0) Check(((delegate* unmanaged[Cdecl]<nint, int, nint>)T[SetIntraOpNumThreadsSlot])(options, settings.IntraOpThreads));
            if (settings.InterOpThreads > 0) Check(((delegate* unmanaged[Cdecl]<nint, int, nint>)T[SetInterOpNumThreadsSlot])(options, settings.InterOpThreads));
            // As the managed path (OrtSession.Options): pool threads flush subnormals when asked to.
            var key = Encoding.UTF8.GetBytes(OrtSession.DenormalAsZeroKey + "\0");
            var flag = Encoding.UTF8.GetBytes((settings.FlushDenormals ? "1" : "0") + "\0");
            fixed (byte* k = key) fixed (byte* v = flag) Check(((delegate* unmanaged[Cdecl]<nint, byte*, byte*, nint>)T[AddSessionConfigEntrySlot])(options, k, v));
            if (modelPath is not null)
            {
                var path = Encoding.UTF8.GetBytes(modelPath + "\0");
                fixed (byte* p = path) Check(((delegate* unmanaged[Cdecl]<nint, byte*, nint, nint*, nint>)T[CreateSessionSlot])(Env, p, options, &session));
            }
            else
                fixed (byte* m = modelBytes)
                    Check(((delegate* unmanaged[Cdecl]<nint, void*, nuint, nint, nint*, nint>)T[CreateSessionFromArraySlot])(Env, m, (nuint)modelBytes.Length, options, &session));
            return session;
        }
        finally { Release(ReleaseSessionOptionsSlot, options); }
    }

    /// <summary>Names and tensor types of a session's inputs or outputs.</summary>
    internal static List<OrtValueInfo> Describe(nint session, bool inputs)
    {
        nuint count;
        Check(((delegate* unmanaged[Cdecl]<nint, nuint*, nint>)T[inputs ? SessionGetInputCountSlot : SessionGetOutputCountSlot])(session, &count));
        nint allocator;
        Check(((delegate* unmanaged[Cdecl]<nint*, nint>)T[GetAllocatorWithDefaultOptionsSlot])(&allocator));
        var list = new List<OrtValueInfo>((int)count);
        for (nuint i = 0; i < count; i++)
        {
            byte* name;
            Check(((delegate* unmanaged[Cdecl]<nint, nuint, nint, byte**, nint>)T[inputs ? SessionGetInputNameSlot : SessionGetOutputNameSlot])(session, i, allocator, &name));
            string n = Marshal.PtrToStringUTF8((nint)name) ?? "";
            Check(((delegate* unmanaged[Cdecl]<nint, void*, nint>)T[AllocatorFreeSlot])(allocator, name));
            nint typeInfo;
            Check(((delegate* unmanaged[Cdecl]<nint, nuint, nint*, nint>)T[inputs ? SessionGetInputTypeInfoSlot : SessionGetOutputTypeInfoSlot])(session, i, &typeInfo));
            try
            {
                int onnxType;
                Check(((delegate* unmanaged[Cdecl]<nint, int*, nint>)T[GetOnnxTypeFromTypeInfoSlot])(typeInfo, &onnxType));
                if (onnxType != 1) { list.Add(new OrtValueInfo(n, null, null)); continue; } // not a tensor
                nint tensorInfo; // owned by typeInfo
                Check(((delegate* unmanaged[Cdecl]<nint, nint*, nint>)T[CastTypeInfoToTensorInfoSlot])(typeInfo, &tensorInfo));
                var (type, shape) = TypeAndShape(tensorInfo);
                list.Add(new OrtValueInfo(n, type, shape.Select(d => (int)Math.Clamp(d, -1, int.MaxValue)).ToArray()));
            }
            finally { Release(ReleaseTypeInfoSlot, typeInfo); }
        }
        return list;
    }

    private static (DType Type, long[] Shape) TypeAndShape(nint tensorInfo)
    {
        int type;
        nuint rank;
        Check(((delegate* unmanaged[Cdecl]<nint, int*, nint>)T[GetTensorElementTypeSlot])(tensorInfo, &type));
        Check(((delegate* unmanaged[Cdecl]<nint, nuint*, nint>)T[GetDimensionsCountSlot])(tensorInfo, &rank));
        var dims = new long[(int)rank];
        fixed (long* d = dims) Check(((delegate* unmanaged[Cdecl]<nint, long*, nuint, nint>)T[GetDimensionsSlot])(tensorInfo, d, rank));
        return (FromCApiType(type), dims);
    }

    /// <summary>
    /// The C API numbers element types as ONNX does up to float4e2m1 (23); after that ONNX inserted float8e8m0 before
    /// uint2/int2, so ORT's 24, 25, 26 are ONNX's uint2, int2, float8e8m0 (ORT's onnxruntime::utils conversions).
    /// </summary>
    internal static DType FromCApiType(int t) => t switch { 24 => DType.UInt2, 25 => DType.Int2, 26 => DType.Float8E8M0, _ => (DType)t };
    internal static int ToCApiType(DType t) => t switch { DType.UInt2 => 24, DType.Int2 => 25, DType.Float8E8M0 => 26, _ => (int)t };

    /// <summary>A tensor over caller-pinned memory (the caller keeps <paramref name="data"/> alive until the value is released).</summary>
    internal static nint CreateTensor(DType type, long[] shape, byte* data, long byteLength)
    {
        nint memoryInfo = 0, value = 0;
        try
        {
            Check(((delegate* unmanaged[Cdecl]<int, int, nint*, nint>)T[CreateCpuMemoryInfoSlot])(1 /* OrtArenaAllocator */, 0 /* OrtMemTypeDefault */, &memoryInfo));
            fixed (long* s = shape)
                Check(((delegate* unmanaged[Cdecl]<nint, void*, nuint, long*, nuint, int, nint*, nint>)T[CreateTensorWithDataAsOrtValueSlot])(
                    memoryInfo, data, (nuint)byteLength, s, (nuint)shape.Length, ToCApiType(type), &value));
            return value;
        }
        finally { Release(ReleaseMemoryInfoSlot, memoryInfo); }
    }

    internal static void Run(nint session, string[] inputNames, nint[] inputs, string[] outputNames, nint[] outputs)
    {
        var names = inputNames.Concat(outputNames).Select(n => Marshal.StringToCoTaskMemUTF8(n)).ToArray();
        try
        {
            fixed (nint* allNames = names)
            fixed (nint* ins = inputs)
            fixed (nint* outs = outputs)
                Check(((delegate* unmanaged[Cdecl]<nint, nint, nint*, nint*, nuint, nint*, nuint, nint*, nint>)T[RunSlot])(
                    session, 0, allNames, ins, (nuint)inputs.Length, allNames + inputNames.Length, (nuint)outputs.Length, outs));
        }
        finally { foreach (var n in names) Marshal.FreeCoTaskMem(n); }
    }

    /// <summary>A sequence over tensor values (ORT keeps its own references; the caller still releases the elements).</summary>
    internal static nint CreateSequence(nint[] elements)
    {
        nint value;
        fixed (nint* e = elements)
            Check(((delegate* unmanaged[Cdecl]<nint*, nuint, int, nint*, nint>)T[CreateValueSlot])(e, (nuint)elements.Length, 2 /* ONNX_TYPE_SEQUENCE */, &value));
        return value;
    }

    /// <summary>ONNX_TYPE_* of a value: 1 tensor, 2 sequence, 3 map, 6 optional.</summary>
    internal static int ValueType(nint value)
    {
        int onnxType;
        Check(((delegate* unmanaged[Cdecl]<nint, int*, nint>)T[GetValueTypeSlot])(value, &onnxType));
        return onnxType;
    }

    /// <summary>The elements of a sequence value (the caller releases each).</summary>
    internal static nint[] SequenceElements(nint sequence)
    {
        nuint count;
        Check(((delegate* unmanaged[Cdecl]<nint, nuint*, nint>)T[GetValueCountSlot])(sequence, &count));
        nint allocator;
        Check(((delegate* unmanaged[Cdecl]<nint*, nint>)T[GetAllocatorWithDefaultOptionsSlot])(&allocator));
        var elements = new nint[(int)Math.Min(count, int.MaxValue)];
        try
        {
            for (int i = 0; i < elements.Length; i++)
            {
                nint e;
                Check(((delegate* unmanaged[Cdecl]<nint, int, nint, nint*, nint>)T[GetValueSlot])(sequence, i, allocator, &e));
                elements[i] = e;
            }
            return elements;
        }
        catch { foreach (var e in elements) ReleaseValue(e); throw; }
    }

    /// <summary>
    /// Whether a value holds something: false for an optional without a value (none). Asked before anything else
    /// about an output, because the managed API's OrtValue asks a none value for its type and ONNX Runtime 1.31.1
    /// then dereferences null (a segfault, measured on an Optional node with no input).
    /// </summary>
    internal static bool HasValue(nint value)
    {
        int has;
        Check(((delegate* unmanaged[Cdecl]<nint, int*, nint>)T[HasValueSlot])(value, &has));
        return has != 0;
    }

    /// <summary>Element type, shape and data of an output tensor; null type for a value that is not a tensor.</summary>
    internal static (DType? Type, long[] Shape, nint Data) Read(nint value)
    {
        int onnxType;
        Check(((delegate* unmanaged[Cdecl]<nint, int*, nint>)T[GetValueTypeSlot])(value, &onnxType));
        if (onnxType != 1) return (null, [], 0);
        nint info;
        Check(((delegate* unmanaged[Cdecl]<nint, nint*, nint>)T[GetTensorTypeAndShapeSlot])(value, &info));
        try
        {
            var (type, shape) = TypeAndShape(info);
            void* data;
            Check(((delegate* unmanaged[Cdecl]<nint, void**, nint>)T[GetTensorMutableDataSlot])(value, &data));
            return (type, shape, (nint)data);
        }
        finally { Release(ReleaseTensorTypeAndShapeInfoSlot, info); }
    }
}

/// <summary>A failed ORT C API call, with ORT's message.</summary>
internal sealed class OrtCallException(string message) : Exception(message);

/// <summary>
/// An ORT session opened through the C API (<see cref="OrtCApi"/>), used for models whose inputs or outputs have
/// an element type the managed API cannot describe. CPU only: the CUDA provider is reached through the managed path.
/// Inputs are copied into pinned buffers in ONNX's raw layout; outputs are copied out before their values are released.
/// </summary>
internal sealed class OrtNativeSession : IDisposable
{
    private readonly SessionHandle handle;
    public IReadOnlyList<OrtValueInfo> Inputs { get; }
    public IReadOnlyList<OrtValueInfo> Outputs { get; }

    /// <summary>Whether the managed API could describe every one of these declared types (then it is used instead).</summary>
    public static bool ManagedApiDescribes(DType? t) => t is null || (int)t <= (int)DType.BFloat16;

    private sealed class SessionHandle() : SafeHandle(0, true)
    {
        public override bool IsInvalid => handle == 0;
        public void Set(nint h) => SetHandle(h);
        protected override bool ReleaseHandle() { OrtCApi.ReleaseSession(handle); return true; }
    }

    public OrtNativeSession(byte[] modelBytes, string? modelPath, OrtSessionSettings settings)
    {
        handle = new SessionHandle();
        handle.Set(FloatingPointEnvironment.Preserving(() => OrtCApi.CreateSession(modelBytes, modelPath, settings)));
        Inputs = OrtCApi.Describe(handle.DangerousGetHandle(), inputs: true);
        Outputs = OrtCApi.Describe(handle.DangerousGetHandle(), inputs: false);
    }

    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames) =>
        RunValues(inputs.ToDictionary(kv => kv.Key, kv => ModelValue.Of(kv.Value)), outputNames).ToDictionary(kv => kv.Key, kv =>
            kv.Value.Tensor ?? throw new GateInputException($"output '{kv.Key}' is not a tensor; Gate reads tensors only"));

    /// <summary>
    /// Runs on tensors, sequences of tensors and nones (an optional input given none is not fed, which ORT reads as
    /// none), and returns each output as what it holds: a tensor, a sequence of tensors, or none.
    /// </summary>
    public unsafe IReadOnlyDictionary<string, ModelValue> RunValues(IReadOnlyDictionary<string, ModelValue> inputs, IReadOnlyList<string> outputNames)
    {
        bool added = false;
        handle.DangerousAddRef(ref added); // a concurrent Dispose waits until this run has finished
        var buffers = new List<GCHandle>();
        var owned = new List<nint>(); // every value created here, sequence elements included
        var fedNames = new List<string>();
        var fed = new List<nint>();
        var outputs = new nint[outputNames.Count];
        try
        {
            nint TensorValue(string name, Tensor t)
            {
                if (!OrtTensorMarshal.IsSupported(t.Type) || t.Type == DType.String)
                    throw new GateInputException($"input '{name}': element type {t.Type.OnnxName()} cannot be passed to ONNX Runtime's C API by Gate (used for narrow element types, sequences and optionals)");
                var bytes = new byte[Math.Max(1, OrtTensorMarshal.ByteLength(t.Type, t.Length))];
                OrtTensorMarshal.Encode(t, bytes);
                var pin = GCHandle.Alloc(bytes, GCHandleType.Pinned);
                buffers.Add(pin);
                var v = OrtCApi.CreateTensor(t.Type, t.Shape.Select(d => (long)d).ToArray(), (byte*)pin.AddrOfPinnedObject(), OrtTensorMarshal.ByteLength(t.Type, t.Length));
                owned.Add(v);
                return v;
            }
            foreach (var (name, value) in inputs)
            {
                if (value.IsNone) continue;
                if (value.Tensor is { } t) fed.Add(TensorValue(name, t));
                else
                {
                    if (value.Sequence!.Count == 0) throw new GateInputException($"input '{name}': ONNX Runtime's C API cannot build an empty sequence");
                    var elements = value.Sequence.Select((e, i) => TensorValue($"{name}[{i}]", e)).ToArray();
                    var seq = OrtCApi.CreateSequence(elements);
                    owned.Add(seq);
                    fed.Add(seq);
                }
                fedNames.Add(name);
            }
            try { OrtCApi.Run(handle.DangerousGetHandle(), fedNames.ToArray(), fed.ToArray(), outputNames.ToArray(), outputs); }
            catch (OrtCallException e) { throw new GateInputException($"ONNX Runtime refused the inputs or failed: {e.Message}", e); }
            var result = new Dictionary<string, ModelValue>(outputNames.Count, StringComparer.Ordinal);
            for (int i = 0; i < outputs.Length; i++)
            {
                var name = outputNames[i];
                if (!OrtCApi.HasValue(outputs[i])) { result[name] = ModelValue.None; continue; }
                switch (OrtCApi.ValueType(outputs[i]))
                {
                    case 1: result[name] = ModelValue.Of(ReadTensor(outputs[i], name)); break;
                    case 2:
                    {
                        var elements = OrtCApi.SequenceElements(outputs[i]);
                        try { result[name] = ModelValue.Of(elements.Select((e, k) => ReadTensor(e, $"{name}[{k}]")).ToList()); }
                        finally { foreach (var e in elements) OrtCApi.ReleaseValue(e); }
                        break;
                    }
                    case var other: throw new GateInputException($"output '{name}' is an ONNX value of type {other} (a map, or a sequence of maps or sequences); gate run reads tensors, sequences of tensors and optionals");
                }
            }
            return result;
        }
        finally
        {
            foreach (var v in outputs) OrtCApi.ReleaseValue(v);
            foreach (var v in owned) OrtCApi.ReleaseValue(v);
            foreach (var b in buffers) b.Free();
            if (added) handle.DangerousRelease();
        }
    }

    private static unsafe Tensor ReadTensor(nint value, string name)
    {
        var (type, shape, data) = OrtCApi.Read(value);
        if (type is not DType dt) throw new GateInputException($"output '{name}' is not a tensor; Gate reads tensors (and sequences of tensors) only");
        var dims = OrtTensorMarshal.CheckedShape(shape, name);
        if (!OrtTensorMarshal.IsSupported(dt) || dt == DType.String)
            throw new GateInputException($"output '{name}': element type {dt.OnnxName()} cannot be read from ONNX Runtime's C API by Gate");
        int n = Tensor.ElementCount(dims);
        return OrtTensorMarshal.Decode(dt, dims, new ReadOnlySpan<byte>((void*)data, (int)OrtTensorMarshal.ByteLength(dt, n)));
    }

    public void Dispose() => handle.Dispose();
}
