using System.Diagnostics;
using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Gate.Core.Attestation;
using Gate.Sandbox.Docker;
using Gate.Tests.Support;

namespace Gate.Tests.Hostile;

/// <summary>
/// Fake runner images built FROM scratch around a tiny static program (fake-runner.c, compiled here with gcc
/// -static), one image per attack: the program plants links, FIFOs and forged reports in /results. The forged
/// results.json (in /plant) is written by this fixture with the right sizes and digests of the HOST's
/// /etc/passwd and of /dev/zero, so a host that followed the link would find everything "consistent".
/// </summary>
public sealed class CompromisedRunnerFixture : IAsyncLifetime
{
    public const string Repository = "gate-hostile-runner";
    public DockerEngine Client { get; } = DockerEngine.FromEnvironment();
    private string? _missing;
    private readonly Dictionary<string, string> _images = new(StringComparer.Ordinal);
    private string? _binary;

    public async ValueTask InitializeAsync()
    {
        if (!await Client.PingAsync(TimeSpan.FromSeconds(3))) { _missing = $"no Docker engine answers on {Client.SocketPath}"; return; }
        var dir = TestPaths.TempDir("gate-fake-runner");
        _binary = Path.Combine(dir, "fake-runner");
        var source = Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "Hostile", "fake-runner.c");
        try
        {
            var psi = new ProcessStartInfo("gcc") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-static", "-Os", "-o", _binary, source }) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var err = await p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            if (p.ExitCode != 0) _missing = $"gcc -static could not build the fake runner (scripts/setup.d/22-static-cc.sh installs gcc and libc6-dev): {err}";
        }
        catch (System.ComponentModel.Win32Exception e) { _missing = $"no C compiler (gcc) for the fake runner; scripts/setup.d/22-static-cc.sh installs it ({e.Message})"; }
    }

    public ValueTask DisposeAsync()
    {
        if (_binary is not null) try { Directory.Delete(Path.GetDirectoryName(_binary)!, true); } catch (IOException) { }
        Client.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The image for one attack (built on first use); fails in CI, skips locally, when Docker or gcc is missing.</summary>
    public async Task<string> ImageAsync(string attack, string plantedResults)
    {
        Need.Component("GATE_REQUIRE_DOCKER", _missing is null, _missing ?? "");
        lock (_images) if (_images.TryGetValue(attack, out var tag)) return tag;
        var dockerfile = $"FROM scratch\nCOPY rootfs/ /\nUSER 65534:65534\nENTRYPOINT [\"/fake-runner\", \"{attack}\"]\n";
        using var context = new MemoryStream();
        using (var tar = new TarWriter(context, TarEntryFormat.Ustar, leaveOpen: true))
        {
            void Add(string name, byte[] bytes, UnixFileMode mode)
            {
                var e = new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(bytes), Mode = mode };
                tar.WriteEntry(e);
            }
            const UnixFileMode rx = UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
            Add("Dockerfile", Encoding.UTF8.GetBytes(dockerfile), UnixFileMode.UserRead | UnixFileMode.OtherRead);
            foreach (var d in new[] { "rootfs/job/", "rootfs/results/", "rootfs/tmp/", "rootfs/plant/" })
                tar.WriteEntry(new UstarTarEntry(TarEntryType.Directory, d) { Mode = rx });
            Add("rootfs/fake-runner", await File.ReadAllBytesAsync(_binary!), rx);
            Add("rootfs/plant/results.json", Encoding.UTF8.GetBytes(plantedResults), UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        context.Position = 0;
        var newTag = $"{Repository}:{attack}";
        await Client.BuildImageAsync(context, [newTag], null);
        lock (_images) _images[attack] = newTag;
        return newTag;
    }
}

/// <summary>
/// A compromised runner (a fake image) attacks the host through what it writes: folder and file links to /etc,
/// /etc/passwd and /dev/zero, FIFOs where the host reads, and a forged self-test. Every attack must end
/// INCONCLUSIVE (exit 2), within the time limit (a FIFO must never hang the host), with no host file in the out
/// folder or in the signed attestation.
/// </summary>
public sealed class CompromisedRunnerTests(CompromisedRunnerFixture fixture) : IClassFixture<CompromisedRunnerFixture>
{
    private static readonly byte[] HostPasswd = File.ReadAllBytes("/etc/passwd");

    /// <summary>A passing accuracy result that lists one evidence file with the given content's size and digest.</summary>
    private static string Planted(string? evidencePath, byte[] claimedContent)
    {
        var ev = new JsonArray();
        if (evidencePath is not null)
            ev.Add(new JsonObject
            {
                ["path"] = evidencePath, ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(claimedContent)),
                ["bytes"] = claimedContent.Length, ["description"] = "planted",
            });
        var result = new JsonObject
        {
            ["id"] = "accuracy", ["type"] = "accuracy", ["verdict"] = "pass", ["summary"] = "accuracy 1.0 (trust me)",
            ["metrics"] = new JsonObject { ["accuracy"] = 1.0 }, ["evidence"] = ev,
        };
        return new JsonObject { ["completed"] = true, ["results"] = new JsonArray(result) }.ToJsonString();
    }

    public static TheoryData<string, string> Attacks => new()
    {
        { "results-link", "symbolic link" },
        { "results-fifo", "FIFO" },
        { "evidence-folder-link", "symbolic link" },
        { "evidence-subfolder-link", "symbolic link" },
        { "evidence-file-link", "symbolic link" },
        { "evidence-dev-zero", "symbolic link" },
        { "evidence-fifo", "FIFO" },
        { "forged-selftest", "self-test" },
    };

    [Theory]
    [MemberData(nameof(Attacks))]
    public async Task A_compromised_runner_gets_inconclusive_and_no_host_file_leaves_its_place(string attack, string reasonMentions)
    {
        var planted = attack switch
        {
            "evidence-folder-link" => Planted("passwd", HostPasswd),
            "evidence-subfolder-link" or "evidence-file-link" => Planted("accuracy/passwd", HostPasswd),
            "evidence-dev-zero" => Planted("accuracy/zero", new byte[1 << 20]),
            "evidence-fifo" => Planted("accuracy/pipe", []),
            _ => Planted(null, []),
        };
        var image = await fixture.ImageAsync(attack, planted);
        var dir = TestPaths.TempDir("gate-hostile-runner");
        var policy = Gate.Tests.Sandbox.SandboxTestJobs.WritePolicy(dir, isolation: "container", timeout: "60s");
        var key = Path.Combine(dir, "gate.key");
        File.WriteAllText(key, SigningKey.Generate().PrivatePem);
        var outDir = Path.Combine(dir, "out");

        var r = GateProcess.Run(["check", "--model", Gate.Tests.Sandbox.SandboxTestJobs.ModelPath, "--policy", policy, "--out", outDir,
                "--sandbox", "docker", "--key", key, "--json"],
            new Dictionary<string, string> { ["GATE_SANDBOX_IMAGE"] = image }, TimeSpan.FromMinutes(2));

        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}, expected 2 (INCONCLUSIVE)\n{r.All}");
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!;
        Assert.Equal("inconclusive", decision["decision"]!.GetValue<string>(), ignoreCase: true);
        var accuracy = decision["checks"]!.AsArray().Single(c => c!["id"]!.GetValue<string>() == "accuracy")!;
        Assert.Equal("inconclusive", accuracy["verdict"]!.GetValue<string>(), ignoreCase: true);
        Assert.Contains(reasonMentions, accuracy["summary"]!.GetValue<string>(), StringComparison.OrdinalIgnoreCase);
        Assert.True(File.Exists(Path.Combine(outDir, "attestation.dsse.json")), "the INCONCLUSIVE decision is still signed");

        var passwdLine = Encoding.UTF8.GetString(HostPasswd).Split('\n')[0];
        foreach (var f in Directory.EnumerateFiles(outDir, "*", SearchOption.AllDirectories))
        {
            var bytes = File.ReadAllBytes(f);
            Assert.False(bytes.AsSpan().SequenceEqual(HostPasswd), $"{f} is a copy of the host's /etc/passwd");
            Assert.DoesNotContain(passwdLine, Encoding.UTF8.GetString(bytes));
            // The attestation is base64 inside: look there too.
            if (f.EndsWith(".dsse.json", StringComparison.Ordinal))
                Assert.DoesNotContain(passwdLine, Encoding.UTF8.GetString(Convert.FromBase64String(JsonNode.Parse(bytes)!["payload"]!.GetValue<string>())));
        }
        Assert.DoesNotContain(Directory.EnumerateFiles(Path.Combine(outDir, "evidence"), "*", SearchOption.AllDirectories),
            f => Path.GetFileName(f) is "passwd" or "zero" or "pipe");
        // The host's own files are where they were, untouched (nothing was chmod-ed or deleted through a link).
        Assert.Equal(HostPasswd, File.ReadAllBytes("/etc/passwd"));
        Assert.True(Directory.Exists("/etc"));
    }
}
