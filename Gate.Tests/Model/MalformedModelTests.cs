using Gate.Core;
using Gate.Core.Model;
using Gate.Tests.Support;

namespace Gate.Tests.Model;

/// <summary>
/// The malformed-model corpus, built fresh in a temp folder: every model must be refused with exit 3 and a
/// message naming the file and the offending node or tensor; external data may never leave the model's folder.
/// </summary>
public class MalformedModelTests
{
    internal static OnnxBuilder Valid() => new OnnxBuilder()
        .Input("x", -1, 4).Output("y", -1, 4)
        .Node("Relu", ["x"], ["y"], "relu0");

    public static TheoryData<string, string> Corpus => new()
    {
        { "truncated", "not a valid ONNX model" },
        { "empty", "model file is empty" },
        { "random-bytes", "not a valid ONNX model" },
        { "cycle", "graph has a cycle through node(s) 'a' (Relu), 'b' (Relu)" },
        { "undefined-input", "node 'r' (Relu) reads 'ghost', which no node, graph input or initializer defines" },
        { "absurd-dims", "tensor 'w' has dimension 1099511627776 at axis 0" },
        { "external-parent", "external data location '../../etc/passwd' leaves the model's folder" },
        { "external-absolute", "external data location '/etc/passwd' is an absolute path" },
        { "external-symlink", "resolves outside the model's folder" },
        { "no-graph", "no graph" },
        { "absurd-input-dims", "'x' declares dimension 99999999999 at axis 1" },
        { "duplicate-producer", "tensor 'y' is produced by two nodes" },
    };

    private static string Build(string kind, string dir)
    {
        var path = Path.Combine(dir, kind + ".onnx");
        switch (kind)
        {
            case "truncated":
                var good = File.ReadAllBytes(TestPaths.FixtureModel("digits-cnn.onnx"));
                File.WriteAllBytes(path, good[..(good.Length / 2)]);
                break;
            case "empty": File.WriteAllBytes(path, []); break;
            case "random-bytes":
                var rnd = new byte[4096];
                new Random(42).NextBytes(rnd);
                File.WriteAllBytes(path, rnd);
                break;
            case "cycle":
                new OnnxBuilder().Input("x", -1, 4).Output("y", -1, 4)
                    .Node("Relu", ["t2"], ["t1"], "a").Node("Relu", ["t1"], ["t2"], "b").Node("Add", ["x", "t2"], ["y"], "c").Save(path);
                break;
            case "undefined-input":
                new OnnxBuilder().Input("x", -1, 4).Output("y", -1, 4).Node("Relu", ["ghost"], ["y"], "r").Save(path);
                break;
            case "absurd-dims":
            {
                var b = Valid();
                var t = new Gate.Core.Model.Proto.TensorProto { Name = "w", DataType = 1 };
                t.Dims.Add(1L << 40);
                b.Graph.Initializer.Add(t);
                b.Save(path);
                break;
            }
            case "external-parent": Valid().ExternalInitializer("w", [4], "../../etc/passwd").Save(path); break;
            case "external-absolute": Valid().ExternalInitializer("w", [4], "/etc/passwd").Save(path); break;
            case "external-symlink":
                File.CreateSymbolicLink(Path.Combine(dir, "weights.bin"), "/etc/passwd");
                Valid().ExternalInitializer("w", [4], "weights.bin").Save(path);
                break;
            case "no-graph":
            {
                var b = Valid();
                b.Model.Graph = null;
                b.Save(path);
                break;
            }
            case "absurd-input-dims": new OnnxBuilder().Input("x", -1, 99999999999).Output("y", -1, 4).Node("Relu", ["x"], ["y"]).Save(path); break;
            case "duplicate-producer":
                new OnnxBuilder().Input("x", -1, 4).Output("y", -1, 4).Node("Relu", ["x"], ["y"], "a").Node("Relu", ["x"], ["y"], "b").Save(path);
                break;
            default: throw new ArgumentException(kind);
        }
        return path;
    }

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Loader_refuses_with_a_message_naming_the_place(string kind, string fragment)
    {
        var dir = TestPaths.TempDir();
        var path = Build(kind, dir);
        var e = Assert.ThrowsAny<GateInputException>(() => OnnxModelLoader.Load(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(fragment, e.Message);
    }

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Cli_exits_3_without_a_stack_trace(string kind, string fragment)
    {
        var dir = TestPaths.TempDir();
        var path = Build(kind, dir);
        var r = GateCli.Run("check", "--model", path, "--policy", Path.Combine(TestPaths.RepoRoot, "policies", "digits-release.yaml"), "--out", Path.Combine(dir, "out"));
        Assert.Equal(3, r.ExitCode);
        Assert.Contains(fragment, r.Stderr);
        Assert.DoesNotContain("   at ", r.All);
        Assert.False(File.Exists(Path.Combine(dir, "out", "decision.json")));
    }

    [Fact]
    public void External_data_inside_the_model_folder_is_loaded()
    {
        var dir = TestPaths.TempDir();
        var floats = new float[] { 1, -2, 3, -4 };
        File.WriteAllBytes(Path.Combine(dir, "w.bin"), floats.SelectMany(BitConverter.GetBytes).ToArray());
        var path = new OnnxBuilder().Input("x", -1, 4).Output("y", -1, 4).ExternalInitializer("w", [4], "w.bin")
            .Node("Add", ["x", "w"], ["y"], "add").Save(Path.Combine(dir, "m.onnx"));
        var model = OnnxModelLoader.Load(path);
        Assert.Equal(floats, model.Graph.Initializers["w"].Floats);
        Assert.Equal("w.bin", model.Graph.ExternalData["w"]);
    }

    [Fact]
    public void Digest_is_sha256_of_the_file_bytes()
    {
        var path = TestPaths.FixtureModel("digits-mlp.onnx");
        var expected = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)));
        var model = OnnxModelLoader.Load(path);
        Assert.Equal(expected, model.Sha256);
        Assert.StartsWith("1666a5d7a806775a", model.Sha256); // MANIFEST.md's first 16 hex digits
        Assert.Equal(13, model.DefaultOpset);
    }
}
