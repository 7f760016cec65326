using Gate.Tests.Support;

namespace Gate.Tests.Cli;

/// <summary>The in-process seam (<see cref="GateCli"/>) behaves like the program: own output per call, same exit codes, inert text.</summary>
public class InProcessCliTests
{
    [Fact]
    public void Concurrent_invocations_each_capture_their_own_output_and_exit_code()
    {
        var results = new ProcessResult[16];
        Parallel.For(0, results.Length, i => results[i] = i % 2 == 0 ? GateCli.Run("check", "--help") : GateCli.Run($"frobnicate{i}"));
        for (int i = 0; i < results.Length; i++)
        {
            var r = results[i];
            if (i % 2 == 0)
            {
                Assert.True(r.ExitCode == 0, r.All);
                Assert.Contains("--policy", r.Stdout);
                Assert.DoesNotContain("frobnicate", r.All);
            }
            else
            {
                Assert.Equal(3, r.ExitCode);
                Assert.Contains($"'frobnicate{i}'", r.Stderr);
                Assert.DoesNotContain("--policy", r.Stdout);
                Assert.DoesNotContain(Enumerable.Range(0, results.Length), j => j != i && r.Stderr.Contains($"'frobnicate{j}'", StringComparison.Ordinal));
            }
        }
    }

    [Fact]
    public void Foreign_text_is_made_inert_in_captured_output_as_on_the_real_streams()
    {
        // An escape sequence in a file name reaches stderr in the error message; it must arrive as a visible \u001B.
        var missing = Path.Combine(TestPaths.TempDir("gate-cli-inert"), "evil\u001b[2Jname.onnx");
        var r = GateCli.Run("check", "--model", missing, "--policy", Path.Combine(TestPaths.RepoRoot, "policies", "digits-release.yaml"));
        Assert.Equal(3, r.ExitCode);
        Assert.DoesNotContain('\u001b', r.All);
        Assert.Contains("evil", r.Stderr);
    }
}
