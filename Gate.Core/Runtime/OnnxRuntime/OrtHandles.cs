using System.Runtime.InteropServices;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// Owns one ORT object and releases it with its Release* function exactly once, even if the owner forgets to
/// dispose (finalizer) or disposes while another thread is still inside a call (SafeHandle ref counting).
/// </summary>
public abstract class OrtHandle : SafeHandle
{
    private readonly OrtApiSlot releaseSlot;

    private protected OrtHandle(OrtApiSlot releaseSlot) : base(0, ownsHandle: true) => this.releaseSlot = releaseSlot;

    public override bool IsInvalid => handle == 0;

    internal void Attach(nint raw) => SetHandle(raw);

    protected override bool ReleaseHandle()
    {
        OrtLibrary.Api.Release(releaseSlot, handle);
        return true;
    }

    /// <summary>Keeps the handle alive for the duration of a native call that uses the returned pointer.</summary>
    internal Lease Borrow() => new(this);

    internal readonly ref struct Lease
    {
        private readonly OrtHandle owner;
        private readonly bool added;
        public nint Pointer { get; }

        public Lease(OrtHandle owner)
        {
            this.owner = owner;
            bool ok = false;
            owner.DangerousAddRef(ref ok); // throws ObjectDisposedException once released
            added = ok;
            Pointer = owner.DangerousGetHandle();
        }

        public void Dispose()
        {
            if (added) owner.DangerousRelease();
        }
    }
}

public sealed class OrtEnvHandle() : OrtHandle(OrtApiSlot.ReleaseEnv);
public sealed class OrtSessionOptionsHandle() : OrtHandle(OrtApiSlot.ReleaseSessionOptions);
public sealed class OrtSessionHandle() : OrtHandle(OrtApiSlot.ReleaseSession);
public sealed class OrtValueHandle() : OrtHandle(OrtApiSlot.ReleaseValue);
public sealed class OrtMemoryInfoHandle() : OrtHandle(OrtApiSlot.ReleaseMemoryInfo);
public sealed class OrtTypeInfoHandle() : OrtHandle(OrtApiSlot.ReleaseTypeInfo);
public sealed class OrtTensorTypeAndShapeInfoHandle() : OrtHandle(OrtApiSlot.ReleaseTensorTypeAndShapeInfo);
