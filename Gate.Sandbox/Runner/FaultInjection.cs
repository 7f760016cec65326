namespace Gate.Sandbox.Runner;

/// <summary>
/// Simulated runner faults for the fault tests. Reached only when the manifest names a fault AND the runner was
/// started with GATE_RUNNER_FAULTS=1 (set only by backends constructed with fault injection, i.e. tests).
/// </summary>
internal static class FaultInjection
{
    public static int Run(string fault, string resultsPath)
    {
        switch (fault)
        {
            case "crash":
                Environment.FailFast("injected crash (fault test)");
                return 134;
            case "oom":
                // Touch every page so the memory is really resident: the cgroup (container) kills us, or the GC
                // heap limit (process backend) throws OutOfMemoryException, which the caller records.
                var hog = new List<byte[]>();
                while (true)
                {
                    var block = new byte[32 << 20];
                    for (int i = 0; i < block.Length; i += 4096) block[i] = 1;
                    hog.Add(block);
                }
            case "oom-native":
                // Native memory bypasses the GC heap limit: only a kernel limit (the container's cgroup) stops it.
                // Never used with the process backend, which has no such limit.
                while (true)
                {
                    const int size = 32 << 20;
                    var p = System.Runtime.InteropServices.Marshal.AllocHGlobal(size);
                    unsafe { for (int i = 0; i < size; i += 4096) ((byte*)p)[i] = 1; }
                }
            case "sigkill":
                // Killed by a signal, as a runner killed from outside (or by an OOM killer) ends. As a container's
                // pid 1 the runner ignores its own SIGKILL: it then ends with the status a killed process reports.
                System.Diagnostics.Process.GetCurrentProcess().Kill();
                Thread.Sleep(1000);
                return 128 + 9;
            case "hang":
                Thread.Sleep(Timeout.Infinite);
                return 0;
            case "garbage":
                File.WriteAllText(resultsPath, "{ this is not json ]");
                return 0;
            case "truncated":
                File.WriteAllText(resultsPath, """{"completed": true, "results": [{"id": "accuracy", "type": "accuracy", "verdict": "pa""");
                return 0;
            case "noresults":
                return 0;
            default:
                throw new ArgumentException($"unknown fault '{fault}'");
        }
    }
}
