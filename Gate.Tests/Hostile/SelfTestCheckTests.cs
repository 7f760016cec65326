using System.Text.Json.Nodes;
using Models = Docker.DotNet.Models;
using Gate.Sandbox.Docker;
using Gate.Sandbox.Protocol;

namespace Gate.Tests.Hostile;

/// <summary>
/// The host checks a runner's self-test instead of believing it, and checks the container's configuration from
/// the engine itself. (A real forged self-test from a compromised image: CompromisedRunnerTests.)
/// </summary>
public class SelfTestCheckTests
{
    private static readonly SelfTestRequest Request = new("127.0.0.1", 1, "192.0.2.1", 443, "CANARY", "v", 64, "0123456789abcdef0123456789abcdef");

    private static JsonObject Honest(long uid = 65534)
    {
        var probes = new JsonArray();
        foreach (var name in SelfTestCheck.ProbeNames)
            probes.Add(new JsonObject { ["name"] = name, ["target"] = "t", ["outcome"] = "blocked", ["detail"] = "d" });
        return new JsonObject { ["nonce"] = Request.Nonce, ["uid"] = uid, ["probes"] = probes };
    }

    [Fact]
    public void A_report_in_the_runners_shape_with_the_nonce_and_uid_is_accepted() =>
        Assert.Null(SelfTestCheck.Problem(Honest(), Request, 65534, 0));

    public static TheoryData<string, string> Forgeries => new()
    {
        { "no nonce", "fields" },
        { "stale nonce", "nonce" },
        { "claims root", "uid 0" },
        { "uid as text", "not an integer" },
        { "extra claim", "fields" },
        { "five probes", "exactly 6 probes" },
        { "probe twice", "listed twice" },
        { "unknown probe", "unknown probe" },
        { "odd outcome", "outcome 'probably'" },
        { "huge detail", "at most 2048" },
        { "loopback lie", "accepted 1 connection" },
    };

    [Theory]
    [MemberData(nameof(Forgeries))]
    public void A_forged_or_inconsistent_report_is_rejected_with_the_reason(string forgery, string reasonMentions)
    {
        var r = Honest();
        var probes = r["probes"]!.AsArray();
        int connections = 0;
        switch (forgery)
        {
            case "no nonce": r.Remove("nonce"); break;
            case "stale nonce": r["nonce"] = new string('f', 32); break;
            case "claims root": r["uid"] = 0; break;
            case "uid as text": r["uid"] = "65534"; break;
            case "extra claim": r["isolated"] = true; break;
            case "five probes": probes.RemoveAt(5); break;
            case "probe twice": probes[5] = probes[0]!.DeepClone(); break;
            case "unknown probe": probes[5]!["name"] = "everything-fine"; break;
            case "odd outcome": probes[0]!["outcome"] = "probably"; break;
            case "huge detail": probes[0]!["detail"] = new string('x', 5000); break;
            case "loopback lie": connections = 1; break;
        }
        var problem = SelfTestCheck.Problem(r, Request, 65534, connections);
        Assert.NotNull(problem);
        Assert.Contains(reasonMentions, problem);
    }

    private static Models.CreateContainerParameters Requested() => ContainerSpec.Create("img", "/w/job", "/w/results", new(64L << 20, 1, TimeSpan.FromSeconds(5), 32), false, false, "test:0");

    /// <summary>What the engine reports for a container created from <see cref="Requested"/>, as Docker writes it.</summary>
    private static Models.ContainerInspectResponse Inspected()
    {
        var spec = Requested();
        return new Models.ContainerInspectResponse
        {
            HostConfig = System.Text.Json.JsonSerializer.Deserialize<Models.HostConfig>(System.Text.Json.JsonSerializer.Serialize(spec.HostConfig)),
            Config = new Models.ContainerConfig { User = spec.User },
            Mounts = [new Models.MountPoint { Destination = "/job" }, new Models.MountPoint { Destination = "/results" }],
        };
    }

    [Fact]
    public void The_container_the_engine_created_must_have_the_requested_isolation()
    {
        Assert.Null(ContainerAudit.Mismatch(Requested(), Inspected()));
        foreach (var (what, change) in new (string, Action<Models.ContainerInspectResponse>)[]
        {
            ("NetworkMode", i => i.HostConfig!.NetworkMode = "bridge"),
            ("ReadonlyRootfs", i => i.HostConfig!.ReadonlyRootfs = false),
            ("CapAdd", i => i.HostConfig!.CapAdd = ["SYS_ADMIN"]),
            ("Privileged", i => i.HostConfig!.Privileged = true),
            ("User", i => i.Config!.User = "0:0"),
            ("mounts", i => i.Mounts!.Add(new Models.MountPoint { Destination = "/data" })),
            ("Tmpfs", i => i.HostConfig!.Tmpfs!["/tmp"] = "rw,exec"),
            ("PidsLimit", i => i.HostConfig!.PidsLimit = null),
        })
        {
            var inspected = Inspected();
            change(inspected);
            var mismatch = ContainerAudit.Mismatch(Requested(), inspected);
            Assert.NotNull(mismatch);
            Assert.Contains(what, mismatch);
        }
    }
}
