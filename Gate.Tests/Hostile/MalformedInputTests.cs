using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Gate.Core;
using Gate.Core.Model;
using Gate.Core.Model.Proto;
using Gate.Core.Policy;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Hostile;

/// <summary>
/// Malformed input is the user's mistake, not Gate's: every case here must end with exit 3 and a message that names
/// the file and the place (line:column, tensor) and says what was expected — never "internal error, please report"
/// (exit 4), never a hang. Catalogued in docs/threat-model.md ("Malformed input: exit 3, never internal error").
/// </summary>
public class MalformedInputTests
{
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(90);
    private static string CnnModel => TestPaths.FixtureModel("digits-cnn.onnx");

    /// <summary>A valid policy whose only check runs on the host (static inspection), so a good input APPROVEs without a sandbox.</summary>
    private const string BasePolicy = """
        apiVersion: gate/v1
        kind: DeploymentPolicy
        metadata:
          name: malformed-input
        spec:
          model:
            format: onnx
            inputs:
              input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
          sandbox:
            isolation: process
            limits: { memory: 2Gi, cpus: 1, timeout: 10m, pids: 256 }
          checks:
            - id: graph
              type: static-inspection

        """;

    private static string WritePolicy(string dir, string text, string name = "policy.yaml")
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, text, new UTF8Encoding(false));
        return path;
    }

    private static ProcessResult Check(string model, string policy, string dir) =>
        GateCli.Run(["check", "--model", model, "--policy", policy, "--out", Path.Combine(dir, "out"), "--sandbox", "process"], Quick);

    private static ProcessResult Lint(params string[] args) => GateCli.Run(["policy", "lint", .. args], Quick);

    /// <summary>Exit 3, the fragment in the message, no stack trace and no "internal error", and no decision written.</summary>
    private static void AssertBadInput(ProcessResult r, string fragment, string? outDir = null)
    {
        Assert.True(r.ExitCode == 3, $"expected exit 3, got {r.ExitCode}:\n{r.All}");
        Assert.Contains(fragment, r.All);
        Assert.DoesNotContain("internal error", r.All);
        Assert.DoesNotContain("   at ", r.All);
        if (outDir is not null) Assert.False(File.Exists(Path.Combine(outDir, "out", "decision.json")), "no decision may be written for bad input");
    }

    [DllImport("libc", SetLastError = true)] private static extern int mkfifo(string path, uint mode);

    private static string MakeFifo(string path)
    {
        Assert.True(mkfifo(path, 0x180 /* 0600 */) == 0, $"mkfifo {path} failed (errno {Marshal.GetLastPInvokeError()})");
        return path;
    }

    /// <summary>A model whose initializer 'w' (float32 [4], 16 bytes) lives in external data; extra keys (offset, length) as given.</summary>
    private static OnnxBuilder ExternalModel(string location, long[]? dims = null, int dataType = 1, params (string Key, string Value)[] extra)
    {
        var b = new OnnxBuilder().Input("x", -1, 4).Output("y", -1, 4).Node("Relu", ["x"], ["y"], "relu0");
        var t = new TensorProto { Name = "w", DataType = dataType, DataLocation = 1 };
        t.Dims.AddRange(dims ?? [4]);
        t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        foreach (var (k, v) in extra) t.ExternalData.Add(new StringStringEntryProto { Key = k, Value = v });
        b.Graph.Initializer.Add(t);
        return b;
    }

    // ---- Model files and their external data ----------------------------------------------------------------

    [Fact]
    public void External_data_that_is_a_fifo_is_refused_without_waiting_for_a_writer()
    {
        var dir = TestPaths.TempDir();
        MakeFifo(Path.Combine(dir, "w.bin"));
        var model = ExternalModel("w.bin").Save(Path.Combine(dir, "m.onnx"));
        // Before the fix the open blocked for ever; GateCli's timeout turns that into a failure.
        AssertBadInput(Check(model, WritePolicy(dir, BasePolicy), dir), "tensor 'w': external data file 'w.bin' is a named pipe (FIFO)", dir);
    }

    [Fact]
    public void External_data_that_is_a_device_is_refused_by_what_it_is()
    {
        // A device inside the model's folder needs mknod (root); a model that claims to sit in /dev reaches
        // /dev/zero through a plain relative location, with no root and no link.
        var bytes = ExternalModel("zero", extra: ("length", "16")).Bytes();
        var e = Assert.ThrowsAny<GateInputException>(() => OnnxModelLoader.Parse(bytes, "/dev/gate-hostile-model.onnx"));
        Assert.Contains("tensor 'w': external data file 'zero' is a character device, not a regular file", e.Message);
    }

    [Fact]
    public void External_data_claiming_three_gigabytes_is_checked_against_the_shape_not_allocated()
    {
        var dir = TestPaths.TempDir();
        using (var fs = File.Create(Path.Combine(dir, "w.bin"))) fs.SetLength(3L << 30); // sparse: costs no disk
        var model = ExternalModel("w.bin", extra: ("length", (3L << 30).ToString())).Save(Path.Combine(dir, "m.onnx"));
        AssertBadInput(Check(model, WritePolicy(dir, BasePolicy), dir),
            "external data file 'w.bin': length 3221225472 does not match the 16 bytes that shape [4] of float32 needs", dir);
    }

    [Fact]
    public void External_tensor_larger_than_an_array_is_refused_before_allocation()
    {
        var dir = TestPaths.TempDir();
        using (var fs = File.Create(Path.Combine(dir, "w.bin"))) fs.SetLength(2L << 30);
        // 2^28 float64 = 2 GiB: within the element limit, beyond what one array can hold.
        var model = ExternalModel("w.bin", [1L << 28], dataType: 11).Save(Path.Combine(dir, "m.onnx"));
        AssertBadInput(Check(model, WritePolicy(dir, BasePolicy), dir), "tensor 'w' needs 2147483648 bytes; one tensor may have at most", dir);
    }

    [Fact]
    public void External_data_range_beyond_the_file_names_the_range_and_the_file_size()
    {
        var dir = TestPaths.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "w.bin"), new byte[8]);
        var model = ExternalModel("w.bin", extra: ("offset", "4")).Save(Path.Combine(dir, "m.onnx"));
        AssertBadInput(Check(model, WritePolicy(dir, BasePolicy), dir), "bytes 4..20 (shape [4] of float32) lie beyond the end of the file (8 bytes)", dir);
    }

    [Fact]
    public void Model_path_that_is_a_fifo_is_refused_without_waiting()
    {
        var dir = TestPaths.TempDir();
        var fifo = MakeFifo(Path.Combine(dir, "model.onnx"));
        AssertBadInput(Check(fifo, WritePolicy(dir, BasePolicy), dir), "model file is a named pipe (FIFO)", dir);
    }

    [Fact]
    public void Model_path_that_is_a_device_is_refused_instead_of_read_for_ever()
    {
        var dir = TestPaths.TempDir();
        AssertBadInput(Check("/dev/zero", WritePolicy(dir, BasePolicy), dir), "/dev/zero: model file is a character device", dir);
    }

    public static TheoryData<string, string> BrokenModels => new()
    {
        { "directory", "model file is a directory, not a file" },
        { "truncated", "not a valid ONNX model (protobuf parse failed" },
        { "wrong-magic", "not a valid ONNX model" },
        { "empty", "model file is empty" },
    };

    [Theory]
    [MemberData(nameof(BrokenModels))]
    public void Broken_model_files_exit_3(string kind, string fragment)
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, "model.onnx");
        var good = File.ReadAllBytes(CnnModel);
        switch (kind)
        {
            case "directory": Directory.CreateDirectory(path); break;
            case "truncated": File.WriteAllBytes(path, good[..100]); break;
            case "wrong-magic": File.WriteAllBytes(path, [.. "PK\u0003\u0004"u8, .. good[4..]]); break;
            case "empty": File.WriteAllBytes(path, []); break;
        }
        AssertBadInput(Check(path, WritePolicy(dir, BasePolicy), dir), fragment, dir);
    }

    // ---- Policy files: bytes, encoding and YAML ------------------------------------------------------------

    [Fact]
    public void Policy_path_that_is_a_directory_or_fifo_is_refused_by_what_it_is()
    {
        var dir = TestPaths.TempDir();
        var folder = Directory.CreateDirectory(Path.Combine(dir, "policy.yaml")).FullName;
        AssertBadInput(Check(CnnModel, folder, dir), "policy file is a directory, not a file", dir);
        var fifo = MakeFifo(Path.Combine(dir, "fifo.yaml"));
        AssertBadInput(Lint(fifo), "policy file is a named pipe (FIFO)");
    }

    [Fact]
    public void Utf8_byte_order_mark_is_accepted_and_the_digest_covers_the_exact_bytes()
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, "policy.yaml");
        byte[] bytes = [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(BasePolicy)];
        File.WriteAllBytes(path, bytes);
        var policy = PolicyLoader.Load(path);
        Assert.Equal("gate/v1", policy.ApiVersion);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), policy.Sha256);
        var r = Check(CnnModel, path, dir);
        Assert.True(r.ExitCode == 0, r.All);
    }

    public static TheoryData<string, string, int, int, string> MalformedPolicies => new()
    {
        // name, how to break the base policy (a Replace "old|new", or a raw text), expected line, column, message
        { "flow-mapping-left-open", "  name: malformed-input|  name: malformed-input\n  labels: { team: x", 5, 11, "YAML syntax error: '{' is never closed" },
        { "flow-sequence-left-open", "[-1, 1, 8, 8]|[-1, 1, 8, 8", 9, 55, "did not find expected ',' or ']'. ('[' opened at line 9, column 23 is not closed)" },
        { "tab-in-indentation", "\n    - id: graph|\n\t- id: graph", 14, 1, "a tab in the indentation; YAML indents with spaces only" },
        { "tab-deep-in-a-block", "      type: static-inspection|      type: static-inspection\n\t  enforcement: advisory", 16, 1, "a tab in the indentation" },
        { "nul-in-a-value", "name: malformed-input|name: malformed\0input", 4, 18, "control character U+0000 is not allowed" },
        { "escape-in-a-value", "name: malformed-input|name: malformed\u001b[31minput", 4, 18, "control character U+001B is not allowed" },
        { "memory-beyond-a-long", "memory: 2Gi|memory: 99999999999999999999Gi", 12, 23, "memory limit 99999999999999999999Gi is larger than the 1Pi limit" },
        { "memory-that-overflowed-to-negative", "memory: 2Gi|memory: 99999999999Gi", 12, 23, "memory limit 99999999999Gi is larger than the 1Pi limit" },
        { "timeout-beyond-a-timespan", "timeout: 10m|timeout: 99999999999999999999h", 12, 46, "duration '99999999999999999999h' is longer than the limit of 168h" },
        { "timeout-zero", "timeout: 10m|timeout: 0s", 12, 46, "duration '0s' leaves no time at all" },
        { "cpus-below-docker-minimum", "cpus: 1,|cpus: 0.001,", 12, 34, "spec.sandbox.limits.cpus: must be ≥ 0.01" },
        { "cpus-zero", "cpus: 1,|cpus: 0,", 12, 34, "spec.sandbox.limits.cpus: must be ≥ 0.01" },
        { "pids-beyond-a-long", "pids: 256|pids: 99999999999999999999", 12, 57, "spec.sandbox.limits.pids: must be an integer" },
    };

    private static string Break(string how) => how.Split('|') is [var old, var @new] ? Replace(BasePolicy, old, @new) : how;

    private static string Replace(string text, string old, string @new)
    {
        Assert.Contains(old, text);
        return text.Replace(old, @new);
    }

    [Theory]
    [MemberData(nameof(MalformedPolicies))]
    public void Malformed_policy_exits_3_at_the_real_line_and_column(string name, string how, int line, int col, string fragment)
    {
        var dir = TestPaths.TempDir();
        var path = WritePolicy(dir, Break(how), name + ".yaml");
        AssertBadInput(Check(CnnModel, path, dir), $"{path}:{line}:{col}: ", dir);
        var lint = Lint(path);
        AssertBadInput(lint, fragment);
        Assert.Contains($"{path}:{line}:{col}: error: ", lint.Stdout);
    }

    public static TheoryData<string, string> UnreadableYaml => new()
    {
        // Shapes of broken YAML that once escaped YamlDotNet as exceptions other than YamlException, or were
        // reported at the wrong place; each must become a positioned PolicyException.
        { "a: [1, 2\nb: 3\n", "1:4: YAML syntax error: '[' is never closed" },
        { "metadata: { name: x\nspec: 1\n", "1:11: YAML syntax error: '{' is never closed" },
        { "a: { b: [1, 2\nc: 3\n", "1:9: YAML syntax error: '[' is never closed" },
        { "a:\n\tb: 1\n", "2:1: YAML syntax error: a tab in the indentation" },
        { "a: \"abc\nb: 1\n", "1:4: YAML syntax error" },
        { "a: 1\n}\n", "2:1: YAML syntax error" },
        { "a: b: c\n", "1:5: YAML syntax error" },
        { "a: 1\n\u00c3\n", "2:1: YAML syntax error" },
    };

    [Theory]
    [MemberData(nameof(UnreadableYaml))]
    public void Any_yaml_the_parser_cannot_read_is_a_positioned_error(string text, string expected)
    {
        var e = Assert.Throws<PolicyException>(() => PolicyYamlReader.Read(text, "p.yaml"));
        Assert.StartsWith($"p.yaml:{expected}", e.Message);
    }

    [Fact]
    public void Non_utf8_bytes_are_reported_at_their_line_and_column()
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, "latin1.yaml");
        File.WriteAllBytes(path, [.. Encoding.UTF8.GetBytes(BasePolicy.Replace("name: malformed-input", "name: caf")), 0xE9, (byte)'\n']);
        var e = Assert.Throws<PolicyException>(() => PolicyLoader.Load(path));
        Assert.StartsWith($"{path}:", e.Message);
        Assert.Contains("byte 0xE9 is not valid UTF-8", e.Message);
        var utf16 = Path.Combine(dir, "utf16.yaml");
        File.WriteAllBytes(utf16, Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes(BasePolicy)).ToArray());
        AssertBadInput(Lint(utf16), "policy is UTF-16 or UTF-32 text");
    }

    [Fact]
    public void Deeply_nested_yaml_is_refused_at_the_nesting_limit()
    {
        var dir = TestPaths.TempDir();
        var path = WritePolicy(dir, "a: " + new string('[', 100_000) + new string(']', 100_000) + "\n");
        AssertBadInput(Lint(path), "nesting deeper than 64");
    }

    // ---- Lint: values Docker or the run would refuse, and the model's opsets -------------------------------

    [Fact]
    public void Lint_warns_when_cpus_exceed_this_host()
    {
        var dir = TestPaths.TempDir();
        var path = WritePolicy(dir, Replace(BasePolicy, "cpus: 1,", $"cpus: {Environment.ProcessorCount + 1},"));
        var r = Lint(path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"{path}:12:34: warning: spec.sandbox.limits.cpus: cpus {Environment.ProcessorCount + 1} is more than this host's {Environment.ProcessorCount}", r.Stdout);
    }

    [Fact]
    public void Counts_beyond_an_int_are_refused_instead_of_silently_wrapping()
    {
        // (int)4294967496 == 200: without a bound a policy would read as demanding 4 billion samples and run 200.
        var dir = TestPaths.TempDir();
        var path = WritePolicy(dir, Replace(BasePolicy, "      type: static-inspection\n",
            "      type: static-inspection\n    - { id: acc, type: accuracy, dataset: test, samples: 4294967496, require: { min: 0.5 } }\n") +
            "  datasets:\n    test: { inputs: x.npy, labels: y.npy }\n");
        var r = Lint(path);
        AssertBadInput(r, "spec.checks[1].samples: must be ≤ 2147483647");
    }

    [Fact]
    public void Lint_with_a_model_warns_on_an_opset_newer_than_the_engine_knows()
    {
        var dir = TestPaths.TempDir();
        var policy = WritePolicy(dir, BasePolicy.Replace("[-1, 1, 8, 8]", "[-1, 4]").Replace("input:", "x:"));
        var newer = Gate.Core.Engine.OperatorRegistry.NewestKnownOpset + 5;
        var model = new OnnxBuilder(opset: newer).Input("x", -1, 4).Output("y", -1, 4).Node("Relu", ["x"], ["y"], "relu0").Save(Path.Combine(dir, "m.onnx"));
        var r = Lint(policy, "--model", model);
        Assert.True(r.ExitCode == 1, r.All);
        Assert.Contains($"warning: spec.model: model m.onnx imports ONNX opset {newer}, newer than the {Gate.Core.Engine.OperatorRegistry.NewestKnownOpset} this Gate knows", r.Stdout);

        var known = new OnnxBuilder(opset: 13).Input("x", -1, 4).Output("y", -1, 4).Node("Relu", ["x"], ["y"], "relu0").Save(Path.Combine(dir, "ok.onnx"));
        Assert.True(Lint(policy, "--model", known).ExitCode == 0);
    }

    [Fact]
    public void Lint_with_a_model_reports_what_gate_check_would_refuse_at_plan_time()
    {
        var dir = TestPaths.TempDir();
        var r = Lint(WritePolicy(dir, BasePolicy), "--model", MalformedModelTestsModel(dir));
        AssertBadInput(r, "spec.model.inputs.input: the model has no input 'input' (model inputs: x)");
        AssertBadInput(Lint(WritePolicy(dir, BasePolicy), "--model", Path.Combine(dir, "missing.onnx")), "missing.onnx: model file not found");
    }

    private static string MalformedModelTestsModel(string dir) =>
        new OnnxBuilder().Input("x", -1, 4).Output("y", -1, 4).Node("Relu", ["x"], ["y"], "relu0").Save(Path.Combine(dir, "x-model.onnx"));

    // ---- Datasets: .npy headers --------------------------------------------------------------------------

    public static TheoryData<string, string> BrokenNpy => new()
    {
        { "v2-header-length-beyond-int", "truncated .npy header (it claims 4294967295 bytes" },
        { "truncated-header", "truncated .npy header" },
        { "wrong-magic", "not a .npy file (missing \\x93NUMPY magic)" },
        // A zip's magic makes the file an .npz (one array per model input), judged by content: a broken one is named as such.
        { "broken-npz", "not a valid .npz archive" },
        { "huge-dims", "array has more than 268435456 elements" },
    };

    [Theory]
    [MemberData(nameof(BrokenNpy))]
    public void Broken_npy_dataset_exits_3_naming_the_file(string kind, string fragment)
    {
        var dir = TestPaths.TempDir();
        var x = Path.Combine(dir, "x.npy");
        byte[] magic = [0x93, .. "NUMPY"u8];
        byte[] Header(string h) { var hb = Encoding.Latin1.GetBytes(h); return [.. magic, 1, 0, (byte)hb.Length, (byte)(hb.Length >> 8), .. hb]; }
        File.WriteAllBytes(x, kind switch
        {
            "v2-header-length-beyond-int" => [.. magic, 2, 0, 0xFF, 0xFF, 0xFF, 0xFF, (byte)'{'],
            "truncated-header" => Header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }\n")[..30],
            "wrong-magic" => [.. "GIF89a"u8, .. new byte[60]],
            "broken-npz" => [.. "PK\u0003\u0004"u8, .. new byte[60]],
            "huge-dims" => Header("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483647, 2147483647), }\n"),
            _ => throw new ArgumentException(kind),
        });
        Npy.Write(Path.Combine(dir, "y.npy"), Tensor.FromLongs([2], [0, 1]));
        var policy = WritePolicy(dir, Replace(BasePolicy, "      type: static-inspection\n",
            "      type: static-inspection\n    - { id: acc, type: accuracy, dataset: test, require: { min: 0.5 } }\n") +
            "  datasets:\n    test: { inputs: x.npy, labels: y.npy }\n");
        AssertBadInput(Check(CnnModel, policy, dir), $"{x}: {fragment}", dir);
    }
}
