using System.CommandLine;
using Gate.Core.Attestation;
using Gate.Core.Model;

namespace Gate.Cli.Commands;

/// <summary><c>gate sign-model</c>: an OpenSSF model-signing signature of every file of a model (thin over <see cref="ModelSignature"/>).</summary>
public static class SignModelCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The ONNX model; its external-data files are signed with it.", Required = true };
        var key = new Option<FileInfo>("--key", "-k") { Description = "ECDSA P-256 private key (PKCS#8 PEM, see 'gate keygen').", Required = true };
        var output = new Option<FileInfo>("--out", "-o") { Description = $"Where to write the signature (default: {ModelSignature.DefaultFileName} beside the model)." };
        var cmd = new Command("sign-model", $"""
            Sign a model in the OpenSSF model-signing format (predicate {ModelSignature.PredicateType}): a Sigstore bundle
            whose DSSE statement lists every model file (the .onnx and each external-data file) with its SHA-256.
            'gate check --key' writes the same signature into OUT/{ModelSignature.DefaultFileName} and records its digest in the decision.
            Exit codes: 0 written, 3 bad input.
            Example: gate sign-model --model model.onnx --key keys/gate.key
            """) { model, key, output };
        cmd.SetAction((pr, ct) => Cli.Guard(() =>
        {
            using var signingKey = SigningKey.Load(pr.GetValue(key)!.FullName);
            var loaded = OnnxModelLoader.Load(pr.GetValue(model)!.FullName);
            var path = pr.GetValue(output)?.FullName ?? Path.Combine(Path.GetDirectoryName(loaded.SourcePath)!, ModelSignature.DefaultFileName);
            var sig = ModelSignature.Write(loaded, path, signingKey);
            Console.Out.WriteLine($"Signed {sig.Files.Count} file(s) ({string.Join(", ", sig.Files)}): model digest sha256 {sig.ModelDigest}");
            Console.Out.WriteLine($"Written: {path} (sha256 {sig.Sha256}, key {signingKey.KeyId})");
            return Task.FromResult(0);
        }));
        return cmd;
    }
}
