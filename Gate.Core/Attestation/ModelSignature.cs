using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Decision;
using Gate.Core.IO;
using Gate.Core.Model;

namespace Gate.Core.Attestation;

/// <summary>
/// A model signature in the OpenSSF model-signing format (sigstore/model-transparency, predicate
/// <c>https://model_signing/signature/v1.0</c>): an in-toto statement whose predicate lists every file of the model
/// (the .onnx and each external-data file, path relative to the model's folder, SHA-256) under <c>resources</c>,
/// sorted by name, with the serialization used; the subject is the model name and the SHA-256 over the concatenated
/// raw file digests in that order. Signed as DSSE and written as a key-signed Sigstore bundle (<c>model.sig</c>).
/// </summary>
public static class ModelSignature
{
    public const string PredicateType = "https://model_signing/signature/v1.0";
    public const string DefaultFileName = "model.sig";

    /// <summary>Every file the model consists of, relative to its folder, '/'-separated, sorted; validated by the safe loader.</summary>
    public static List<string> ModelFiles(OnnxModel model)
    {
        var files = new SortedSet<string>(StringComparer.Ordinal) { model.FileName };
        foreach (var location in model.Graph.ExternalData.Values)
            files.Add(location.Replace('\\', '/').TrimStart('.', '/'));
        return [.. files];
    }

    public static byte[] Statement(OnnxModel model)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(model.SourcePath))!;
        var resources = new JsonArray();
        using var root = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var name in ModelFiles(model))
        {
            byte[] digest;
            var path = Path.Combine(dir, name);
            UntrustedInput.RequireRegularFile(path, "model file");
            using (var fs = File.OpenRead(path)) digest = SHA256.HashData(fs);
            root.AppendData(digest);
            resources.Add(new JsonObject { ["name"] = name, ["algorithm"] = "sha256", ["digest"] = Convert.ToHexStringLower(digest) });
        }
        var statement = new JsonObject
        {
            ["_type"] = DecisionAttestation.StatementType,
            ["subject"] = new JsonArray(new JsonObject
            {
                ["name"] = model.FileName,
                ["digest"] = new JsonObject { ["sha256"] = Convert.ToHexStringLower(root.GetHashAndReset()) },
            }),
            ["predicateType"] = PredicateType,
            ["predicate"] = new JsonObject
            {
                ["serialization"] = new JsonObject
                {
                    ["method"] = "files", ["hash_type"] = "sha256", ["allow_symlinks"] = false, ["ignore_paths"] = new JsonArray(),
                },
                ["resources"] = resources,
            },
        };
        return JsonSerializer.SerializeToUtf8Bytes(statement);
    }

    /// <summary>
    /// Signs the model of a finished run into <c>OUT/model.sig</c>, before decision.json is written so that the signed
    /// decision records the signature's digest. The model is loaded again: if it changed since it was judged, nothing is signed.
    /// </summary>
    public static ModelSignatureRef WriteFor(DecisionRecord record, string outDir, SigningKey key)
    {
        var model = OnnxModelLoader.Load(record.Model.Path);
        if (model.Sha256 != record.Model.Sha256)
            throw new GateInputException($"{record.Model.Path}: the model changed during the run (sha256 {model.Sha256}, judged {record.Model.Sha256}); nothing was signed");
        return Write(model, Path.Combine(outDir, DefaultFileName), key);
    }

    /// <summary>Signs the model's files and writes the bundle atomically; returns the reference a decision records.</summary>
    public static ModelSignatureRef Write(OnnxModel model, string path, SigningKey key)
    {
        var statement = Statement(model);
        var envelope = DsseEnvelope.Sign(DecisionAttestation.PayloadType, statement, key);
        var text = SigstoreBundle.ToJson(envelope, key.Public);
        AtomicFile.WriteText(path, text);
        var st = JsonNode.Parse(statement)!;
        return new ModelSignatureRef(Path.GetFileName(path), Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text))),
            st["subject"]![0]!["digest"]!["sha256"]!.GetValue<string>(), ModelFiles(model));
    }
}
