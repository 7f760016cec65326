using System.Runtime.InteropServices;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// Positions of the functions Gate calls in ORT's <c>OrtApi</c> struct (include/onnxruntime/core/session/onnxruntime_c_api.h).
/// The struct is append-only across releases, so these indices hold for every version ≥ the one that added them;
/// each was counted from the header's declaration order and is exercised end to end by Gate.Tests/Runtime.
/// </summary>
internal enum OrtApiSlot
{
    GetErrorCode = 1,
    GetErrorMessage = 2,
    CreateEnv = 3,
    CreateSession = 7,
    CreateSessionFromArray = 8,
    Run = 9,
    CreateSessionOptions = 10,
    SetSessionGraphOptimizationLevel = 23,
    SetIntraOpNumThreads = 24,
    SetInterOpNumThreads = 25,
    SessionGetInputCount = 30,
    SessionGetOutputCount = 31,
    SessionGetInputTypeInfo = 33,
    SessionGetOutputTypeInfo = 34,
    SessionGetInputName = 36,
    SessionGetOutputName = 37,
    CreateTensorWithDataAsOrtValue = 49,
    GetTensorMutableData = 51,
    CastTypeInfoToTensorInfo = 55,
    GetOnnxTypeFromTypeInfo = 56,
    GetTensorElementType = 60,
    GetDimensionsCount = 61,
    GetDimensions = 62,
    GetTensorTypeAndShape = 65,
    GetValueType = 67,
    CreateCpuMemoryInfo = 69,
    AllocatorFree = 76,
    GetAllocatorWithDefaultOptions = 78,
    ReleaseEnv = 92,
    ReleaseStatus = 93,
    ReleaseMemoryInfo = 94,
    ReleaseSession = 95,
    ReleaseValue = 96,
    ReleaseTypeInfo = 98,
    ReleaseTensorTypeAndShapeInfo = 99,
    ReleaseSessionOptions = 100,
    GetAvailableProviders = 125,
    ReleaseAvailableProviders = 126,
    SessionOptionsAppendExecutionProvider_CUDA = 152,
}

/// <summary>ORT's OrtErrorCode.</summary>
public enum OrtErrorCode
{
    Ok = 0, Fail = 1, InvalidArgument = 2, NoSuchFile = 3, NoModel = 4, EngineError = 5, RuntimeException = 6,
    InvalidProtobuf = 7, ModelLoaded = 8, NotImplemented = 9, InvalidGraph = 10, EpFail = 11,
}

/// <summary>A failed ORT call: the error code and ORT's own message.</summary>
public sealed class OrtException(OrtErrorCode code, string message) : Exception(message)
{
    public OrtErrorCode Code { get; } = code;
}

/// <summary>
/// The ORT C API function table, called through unmanaged function pointers. Every status-returning call goes through
/// <see cref="Check"/>, which turns a non-null OrtStatus into an <see cref="OrtException"/> carrying ORT's message.
/// </summary>
public sealed unsafe class OrtApi
{
    /// <summary>The ORT_API_VERSION that onnxruntime_c_api.h of ORT 1.30 declares.</summary>
    public const uint ApiVersion = 30;

    private readonly nint* table;

    /// <summary>ORT's version string (OrtApiBase::GetVersionString), e.g. "1.30.0".</summary>
    public string Version { get; }
    public string LibraryPath { get; }

    private OrtApi(nint* table, string version, string libraryPath)
    {
        this.table = table;
        Version = version;
        LibraryPath = libraryPath;
    }

    internal static OrtApi Create(nint getApiBase, string libraryPath)
    {
        // struct OrtApiBase { const OrtApi* (*GetApi)(uint32_t version); const char* (*GetVersionString)(void); }
        var apiBase = ((delegate* unmanaged[Cdecl]<nint*>)getApiBase)();
        if (apiBase is null) throw new GateComponentMissingException($"{libraryPath}: OrtGetApiBase returned null");
        var version = Marshal.PtrToStringUTF8(((delegate* unmanaged[Cdecl]<nint>)apiBase[1])()) ?? "?";
        var table = ((delegate* unmanaged[Cdecl]<uint, nint*>)apiBase[0])(ApiVersion);
        if (table is null)
            throw new GateComponentMissingException(
                $"{libraryPath}: ONNX Runtime {version} does not provide API version {ApiVersion} (Gate needs ONNX Runtime ≥ {OrtLibrary.PinnedVersion})");
        return new OrtApi(table, version, libraryPath);
    }

    private nint F(OrtApiSlot slot) => table[(int)slot];

    /// <summary>Throws <see cref="OrtException"/> (with ORT's message) when <paramref name="status"/> is an error; releases it.</summary>
    public void Check(nint status)
    {
        if (status == 0) return;
        var code = (OrtErrorCode)((delegate* unmanaged[Cdecl]<nint, int>)F(OrtApiSlot.GetErrorCode))(status);
        var message = Marshal.PtrToStringUTF8(((delegate* unmanaged[Cdecl]<nint, nint>)F(OrtApiSlot.GetErrorMessage))(status)) ?? "(no message)";
        ((delegate* unmanaged[Cdecl]<nint, void>)F(OrtApiSlot.ReleaseStatus))(status);
        throw new OrtException(code, message);
    }

    // ---- environment, options, session ----
    internal nint CreateEnv(int logLevel, byte* logId, nint* env) =>
        ((delegate* unmanaged[Cdecl]<int, byte*, nint*, nint>)F(OrtApiSlot.CreateEnv))(logLevel, logId, env);
    internal nint CreateSessionOptions(nint* options) =>
        ((delegate* unmanaged[Cdecl]<nint*, nint>)F(OrtApiSlot.CreateSessionOptions))(options);
    internal nint SetSessionGraphOptimizationLevel(nint options, int level) =>
        ((delegate* unmanaged[Cdecl]<nint, int, nint>)F(OrtApiSlot.SetSessionGraphOptimizationLevel))(options, level);
    internal nint SetIntraOpNumThreads(nint options, int n) =>
        ((delegate* unmanaged[Cdecl]<nint, int, nint>)F(OrtApiSlot.SetIntraOpNumThreads))(options, n);
    internal nint SetInterOpNumThreads(nint options, int n) =>
        ((delegate* unmanaged[Cdecl]<nint, int, nint>)F(OrtApiSlot.SetInterOpNumThreads))(options, n);
    internal nint AppendExecutionProviderCuda(nint options, void* cudaOptions) =>
        ((delegate* unmanaged[Cdecl]<nint, void*, nint>)F(OrtApiSlot.SessionOptionsAppendExecutionProvider_CUDA))(options, cudaOptions);
    internal nint CreateSession(nint env, byte* path, nint options, nint* session) =>
        ((delegate* unmanaged[Cdecl]<nint, byte*, nint, nint*, nint>)F(OrtApiSlot.CreateSession))(env, path, options, session);
    internal nint CreateSessionFromArray(nint env, void* data, nuint length, nint options, nint* session) =>
        ((delegate* unmanaged[Cdecl]<nint, void*, nuint, nint, nint*, nint>)F(OrtApiSlot.CreateSessionFromArray))(env, data, length, options, session);
    internal nint Run(nint session, nint runOptions, byte** inputNames, nint* inputs, nuint inputCount, byte** outputNames, nuint outputCount, nint* outputs) =>
        ((delegate* unmanaged[Cdecl]<nint, nint, byte**, nint*, nuint, byte**, nuint, nint*, nint>)F(OrtApiSlot.Run))(
            session, runOptions, inputNames, inputs, inputCount, outputNames, outputCount, outputs);

    // ---- session metadata ----
    internal nint SessionGetInputCount(nint session, nuint* n) =>
        ((delegate* unmanaged[Cdecl]<nint, nuint*, nint>)F(OrtApiSlot.SessionGetInputCount))(session, n);
    internal nint SessionGetOutputCount(nint session, nuint* n) =>
        ((delegate* unmanaged[Cdecl]<nint, nuint*, nint>)F(OrtApiSlot.SessionGetOutputCount))(session, n);
    internal nint SessionGetInputName(nint session, nuint i, nint allocator, byte** name) =>
        ((delegate* unmanaged[Cdecl]<nint, nuint, nint, byte**, nint>)F(OrtApiSlot.SessionGetInputName))(session, i, allocator, name);
    internal nint SessionGetOutputName(nint session, nuint i, nint allocator, byte** name) =>
        ((delegate* unmanaged[Cdecl]<nint, nuint, nint, byte**, nint>)F(OrtApiSlot.SessionGetOutputName))(session, i, allocator, name);
    internal nint SessionGetInputTypeInfo(nint session, nuint i, nint* typeInfo) =>
        ((delegate* unmanaged[Cdecl]<nint, nuint, nint*, nint>)F(OrtApiSlot.SessionGetInputTypeInfo))(session, i, typeInfo);
    internal nint SessionGetOutputTypeInfo(nint session, nuint i, nint* typeInfo) =>
        ((delegate* unmanaged[Cdecl]<nint, nuint, nint*, nint>)F(OrtApiSlot.SessionGetOutputTypeInfo))(session, i, typeInfo);
    internal nint GetOnnxTypeFromTypeInfo(nint typeInfo, int* onnxType) =>
        ((delegate* unmanaged[Cdecl]<nint, int*, nint>)F(OrtApiSlot.GetOnnxTypeFromTypeInfo))(typeInfo, onnxType);
    /// <summary>The returned tensor info is owned by the type info: do not release it.</summary>
    internal nint CastTypeInfoToTensorInfo(nint typeInfo, nint* tensorInfo) =>
        ((delegate* unmanaged[Cdecl]<nint, nint*, nint>)F(OrtApiSlot.CastTypeInfoToTensorInfo))(typeInfo, tensorInfo);
    internal nint GetTensorElementType(nint tensorInfo, int* type) =>
        ((delegate* unmanaged[Cdecl]<nint, int*, nint>)F(OrtApiSlot.GetTensorElementType))(tensorInfo, type);
    internal nint GetDimensionsCount(nint tensorInfo, nuint* n) =>
        ((delegate* unmanaged[Cdecl]<nint, nuint*, nint>)F(OrtApiSlot.GetDimensionsCount))(tensorInfo, n);
    internal nint GetDimensions(nint tensorInfo, long* dims, nuint n) =>
        ((delegate* unmanaged[Cdecl]<nint, long*, nuint, nint>)F(OrtApiSlot.GetDimensions))(tensorInfo, dims, n);

    // ---- values ----
    internal nint CreateCpuMemoryInfo(int allocatorType, int memType, nint* info) =>
        ((delegate* unmanaged[Cdecl]<int, int, nint*, nint>)F(OrtApiSlot.CreateCpuMemoryInfo))(allocatorType, memType, info);
    internal nint CreateTensorWithDataAsOrtValue(nint memoryInfo, void* data, nuint byteLength, long* shape, nuint rank, int type, nint* value) =>
        ((delegate* unmanaged[Cdecl]<nint, void*, nuint, long*, nuint, int, nint*, nint>)F(OrtApiSlot.CreateTensorWithDataAsOrtValue))(
            memoryInfo, data, byteLength, shape, rank, type, value);
    internal nint GetValueType(nint value, int* onnxType) =>
        ((delegate* unmanaged[Cdecl]<nint, int*, nint>)F(OrtApiSlot.GetValueType))(value, onnxType);
    internal nint GetTensorTypeAndShape(nint value, nint* tensorInfo) =>
        ((delegate* unmanaged[Cdecl]<nint, nint*, nint>)F(OrtApiSlot.GetTensorTypeAndShape))(value, tensorInfo);
    internal nint GetTensorMutableData(nint value, void** data) =>
        ((delegate* unmanaged[Cdecl]<nint, void**, nint>)F(OrtApiSlot.GetTensorMutableData))(value, data);

    // ---- allocator, providers ----
    internal nint GetAllocatorWithDefaultOptions(nint* allocator) =>
        ((delegate* unmanaged[Cdecl]<nint*, nint>)F(OrtApiSlot.GetAllocatorWithDefaultOptions))(allocator);
    internal nint AllocatorFree(nint allocator, void* p) =>
        ((delegate* unmanaged[Cdecl]<nint, void*, nint>)F(OrtApiSlot.AllocatorFree))(allocator, p);
    internal nint GetAvailableProviders(byte*** names, int* count) =>
        ((delegate* unmanaged[Cdecl]<byte***, int*, nint>)F(OrtApiSlot.GetAvailableProviders))(names, count);
    internal nint ReleaseAvailableProviders(byte** names, int count) =>
        ((delegate* unmanaged[Cdecl]<byte**, int, nint>)F(OrtApiSlot.ReleaseAvailableProviders))(names, count);

    // ---- release functions (void) ----
    internal void Release(OrtApiSlot slot, nint handle) => ((delegate* unmanaged[Cdecl]<nint, void>)F(slot))(handle);

    /// <summary>Names of the execution providers compiled into this library (not a promise that they load).</summary>
    public IReadOnlyList<string> AvailableProviders()
    {
        byte** names;
        int count;
        Check(GetAvailableProviders(&names, &count));
        try
        {
            var list = new List<string>(count);
            for (int i = 0; i < count; i++) list.Add(Marshal.PtrToStringUTF8((nint)names[i]) ?? "");
            return list;
        }
        finally { Check(ReleaseAvailableProviders(names, count)); }
    }
}
