using System.Runtime.InteropServices;

namespace Gate.Sandbox;

/// <summary>The libc calls the host side and the runner both need.</summary>
public static class Posix
{
    /// <summary>The effective user id of this process.</summary>
    [DllImport("libc")] public static extern uint geteuid();
}
