using System.Globalization;

namespace Gate.Sandbox.Bubblewrap;

/// <summary>
/// A fresh memory + pids cgroup for one sandbox, where this host lets us make one (root, cgroup v2 with both
/// controllers, or v1 memory and pids hierarchies): the kernel's limit on everything the sandbox allocates — native
/// memory included, no swap — and on its tasks. The sandbox joins it before bubblewrap starts (see
/// <see cref="ProcsFiles"/>); <see cref="Dispose"/> removes it once the sandbox has exited.
/// </summary>
internal sealed class CgroupLimits : IDisposable
{
    private readonly List<string> _dirs;
    private readonly string _memoryDir;
    private readonly bool _v2;

    /// <summary>The cgroup.procs files the sandbox's first process writes its pid into.</summary>
    public IReadOnlyList<string> ProcsFiles => _dirs.Select(d => Path.Combine(d, "cgroup.procs")).ToList();

    private CgroupLimits(List<string> dirs, string memoryDir, bool v2) { _dirs = dirs; _memoryDir = memoryDir; _v2 = v2; }

    /// <summary>Whether this host gives us cgroups to limit a sandbox with (probed by making and removing one).</summary>
    public static bool Available()
    {
        using var probe = TryCreate(64L << 20, 64);
        return probe is not null;
    }

    /// <summary>Every sandbox cgroup this process makes starts with this.</summary>
    public static string NamePrefix => $"gate-sandbox-{Environment.ProcessId}-";

    /// <summary>A new cgroup with these limits, or null when this host does not let us make one.</summary>
    public static CgroupLimits? TryCreate(long memoryBytes, int pids)
    {
        // The owner's pid in the name: leftovers can be told apart per gate process (other runs share the hierarchy).
        var name = $"{NamePrefix}{Guid.NewGuid():N}";
        var made = new List<string>();
        try
        {
            if (File.Exists("/sys/fs/cgroup/cgroup.controllers"))
            {
                // v2: under our own cgroup, which must delegate memory and pids to its children.
                var own = Path.Combine("/sys/fs/cgroup", OwnPath("") ?? "/");
                var controllers = File.ReadAllText(Path.Combine(own, "cgroup.subtree_control"));
                if (!controllers.Contains("memory", StringComparison.Ordinal) || !controllers.Contains("pids", StringComparison.Ordinal)) return null;
                var dir = Path.Combine(own, name);
                Directory.CreateDirectory(dir);
                made.Add(dir);
                if (memoryBytes > 0)
                {
                    File.WriteAllText(Path.Combine(dir, "memory.max"), memoryBytes.ToString(CultureInfo.InvariantCulture));
                    if (File.Exists(Path.Combine(dir, "memory.swap.max"))) File.WriteAllText(Path.Combine(dir, "memory.swap.max"), "0");
                }
                File.WriteAllText(Path.Combine(dir, "pids.max"), pids.ToString(CultureInfo.InvariantCulture));
                return new CgroupLimits(made, dir, v2: true);
            }
            string? mem = null;
            foreach (var controller in new[] { "memory", "pids" })
            {
                var root = Path.Combine("/sys/fs/cgroup", controller);
                if (!Directory.Exists(root)) return Undo(made);
                var dir = Path.Combine(root, (OwnPath(controller) ?? "/").TrimStart('/'), name);
                Directory.CreateDirectory(dir);
                made.Add(dir);
                if (controller == "memory")
                {
                    mem = dir;
                    if (memoryBytes > 0)
                    {
                        File.WriteAllText(Path.Combine(dir, "memory.limit_in_bytes"), memoryBytes.ToString(CultureInfo.InvariantCulture));
                        // memory+swap equal to memory: no swap (absent when the kernel does not account swap).
                        if (File.Exists(Path.Combine(dir, "memory.memsw.limit_in_bytes")))
                            File.WriteAllText(Path.Combine(dir, "memory.memsw.limit_in_bytes"), memoryBytes.ToString(CultureInfo.InvariantCulture));
                    }
                }
                else File.WriteAllText(Path.Combine(dir, "pids.max"), pids.ToString(CultureInfo.InvariantCulture));
            }
            return new CgroupLimits(made, mem!, v2: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return Undo(made); }
    }

    private static CgroupLimits? Undo(List<string> made)
    {
        foreach (var d in made) try { Directory.Delete(d); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>This process's cgroup path for a v1 controller ("" = the v2 unified one), from /proc/self/cgroup.</summary>
    private static string? OwnPath(string controller)
    {
        foreach (var line in File.ReadAllLines("/proc/self/cgroup"))
        {
            var parts = line.Split(':', 3);
            if (parts.Length == 3 && (controller.Length == 0 ? parts[0] == "0" && parts[1].Length == 0 : parts[1].Split(',').Contains(controller))) return parts[2];
        }
        return null;
    }

    /// <summary>Whether the kernel killed a task of this cgroup for memory (the oom_kill counter).</summary>
    public bool OomKilled()
    {
        try
        {
            var file = Path.Combine(_memoryDir, _v2 ? "memory.events" : "memory.oom_control");
            foreach (var line in File.ReadAllLines(file))
                if (line.StartsWith("oom_kill ", StringComparison.Ordinal) && long.TryParse(line[9..], out var n)) return n > 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return false;
    }

    public void Dispose()
    {
        // The sandbox has exited (bubblewrap dies with its parent, and the host killed the tree); the cgroups are empty.
        foreach (var d in _dirs)
            for (int i = 0; i < 20; i++)
            {
                try { Directory.Delete(d); break; }
                catch (DirectoryNotFoundException) { break; }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Thread.Sleep(50); }
            }
    }
}
