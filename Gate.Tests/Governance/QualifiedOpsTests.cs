using Gate.Core.Checks.StaticInspection;
using Gate.Core.Evidence;
using Gate.Core.Governance;
using Gate.Core.Model;
using Gate.Tests.Checks;
using Gate.Tests.Support;

namespace Gate.Tests.Governance;

/// <summary>
/// allowOps/denyOps name operators of other domains as exported models use them: dotted (com.microsoft.FusedGemm,
/// ai.onnx.ml.TreeEnsembleClassifier) or with a colon; the binder, the inspection and the diff read one spelling.
/// </summary>
public class QualifiedOpsTests
{
    [Theory]
    [InlineData("com.microsoft.FusedGemm", "com.microsoft:FusedGemm")]
    [InlineData("com.microsoft:FusedGemm", "com.microsoft:FusedGemm")]
    [InlineData("ai.onnx.ml.TreeEnsembleClassifier", "ai.onnx.ml:TreeEnsembleClassifier")]
    [InlineData("ai.onnx.Relu", "Relu")]
    [InlineData("ai.onnx:Relu", "Relu")]
    [InlineData("Relu", "Relu")]
    public void Policy_spellings_map_to_one_name(string written, string meant) =>
        Assert.Equal(meant, StaticInspectionCheck.QualifiedOp(written));

    /// <summary>Gemm → com.microsoft FusedGemm (what ORT's optimiser writes out) → Relu.</summary>
    private static OnnxModel FusedModel()
    {
        var b = new OnnxBuilder([1, 1, 8, 8], input: "input");
        var flat = b.Node("Flatten", ["input"]);
        var fused = b.Node("Gemm", [flat, b.Init(new float[64 * 10], 10, 64)], ("transB", 1));
        var node = b.Graph.Node[^1];
        node.OpType = "FusedGemm";
        node.Domain = "com.microsoft";
        b.Model.OpsetImport.Add(new Gate.Core.Model.Proto.OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        return b.Build(b.Node("Relu", [fused]), [1, 10]);
    }

    private static string Inspection(string allow) => MechanisticHarness.DigitsPolicy($"""
            - id: graph
              type: static-inspection
              allowOps: {allow}
              allowCustomDomains: true
        """);

    [Theory]
    [InlineData("[Flatten, com.microsoft.FusedGemm, Relu]")]
    [InlineData("[Flatten, com.microsoft:FusedGemm, ai.onnx.Relu]")]
    public void Static_inspection_allows_a_domain_qualified_operator(string allow)
    {
        var (r, _) = MechanisticHarness.Run(FusedModel(), Inspection(allow));
        Assert.True(r.Verdict == Verdict.Pass, string.Join("; ", r.Reasons) + r.Summary);
    }

    [Fact]
    public void Static_inspection_still_fails_an_operator_of_another_domain_with_the_same_name()
    {
        var (r, _) = MechanisticHarness.Run(FusedModel(), Inspection("[Flatten, FusedGemm, Relu]"));
        Assert.Equal(Verdict.Fail, r.Verdict);
    }

    [Fact]
    public void Diff_reads_a_respelled_allow_list_as_no_change()
    {
        var before = PolicyLintTests.Parse(PolicyLintTests.Strong.Replace("allowOps: [Conv, Relu, Gemm]", "allowOps: [Conv, Relu, Gemm, com.microsoft:FusedGemm]"));
        var after = PolicyLintTests.Parse(PolicyLintTests.Strong.Replace("allowOps: [Conv, Relu, Gemm]", "allowOps: [Conv, ai.onnx.Relu, Gemm, com.microsoft.FusedGemm]"));
        Assert.Empty(PolicyDiff.Compare(before, after));
    }
}
