namespace Gate.Tests.Support;

/// <summary>Locates the repository and the shared fixtures beside it (../shared), wherever tests run from.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gate.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("cannot find Gate.sln above " + AppContext.BaseDirectory);
    }

    public static string Shared => Environment.GetEnvironmentVariable("GATE_SHARED") ?? Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
    public static string Fixtures => Path.Combine(Shared, "fixtures");
    public static string FixtureModel(string name) => Path.Combine(Fixtures, "models", name);
    public static string FixtureData(string name) => Path.Combine(Fixtures, "data", name);
    public static string OnnxNodeTests => Path.Combine(Shared, "onnx-node-tests");

    public static string TempDir(string prefix = "gate-test")
    {
        var d = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(d);
        return d;
    }
}
