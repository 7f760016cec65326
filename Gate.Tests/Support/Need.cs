namespace Gate.Tests.Support;

/// <summary>
/// Guards for tests that need an external component. Locally a missing component skips the test with the reason;
/// in CI (GATE_REQUIRE_DOCKER / GATE_REQUIRE_BWRAP / GATE_REQUIRE_ORT / GATE_REQUIRE_CHROMIUM / GATE_REQUIRE_SLURM = 1, set by .ci/run) it fails instead,
/// because a green run that skipped the hard tests would be a red run in disguise.
/// </summary>
public static class Need
{
    public static void Component(string requireVariable, bool available, string whatIsMissing)
    {
        if (available) return;
        if (Environment.GetEnvironmentVariable(requireVariable) == "1")
            Assert.Fail($"{whatIsMissing} ({requireVariable}=1, so this test may not be skipped)");
        Assert.Skip(whatIsMissing);
    }
}
