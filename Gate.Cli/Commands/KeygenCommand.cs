using System.CommandLine;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.IO;

namespace Gate.Cli.Commands;

public static class KeygenCommand
{
    public static Command Create()
    {
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Write gate.key (private, mode 0600) and gate.pub into this folder." };
        var priv = new Option<FileInfo>("--private") { Description = "Path for the private key (PKCS#8 PEM); use with --public instead of --out." };
        var pub = new Option<FileInfo>("--public") { Description = "Path for the public key (SubjectPublicKeyInfo PEM)." };
        var force = new Option<bool>("--force") { Description = "Overwrite existing key files." };
        var cmd = new Command("keygen", """
            Generate an ECDSA P-256 key pair for signing decisions (gate check --key) and policy approvals (gate policy approve).
            Prints the key id: the hex SHA-256 of the public key's DER encoding.
            Example: gate keygen --out keys/
            """) { outDir, priv, pub, force };
        cmd.SetAction((pr, ct) => Cli.Guard(() =>
        {
            string privPath, pubPath;
            if (pr.GetValue(outDir) is { } d)
            {
                if (pr.GetValue(priv) is not null || pr.GetValue(pub) is not null) throw new GateInputException("give either --out DIR or --private FILE --public FILE, not both");
                privPath = Path.Combine(d.FullName, "gate.key");
                pubPath = Path.Combine(d.FullName, "gate.pub");
            }
            else if (pr.GetValue(priv) is { } p && pr.GetValue(pub) is { } q) { privPath = p.FullName; pubPath = q.FullName; }
            else throw new GateInputException("give --out DIR, or both --private FILE and --public FILE");
            if (!pr.GetValue(force))
                foreach (var f in new[] { privPath, pubPath })
                    if (File.Exists(f)) throw new GateInputException($"{f}: already exists (use --force to overwrite)");
            using var key = SigningKey.Generate();
            AtomicFile.WriteText(privPath, key.PrivatePem, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            AtomicFile.WriteText(pubPath, key.Public.Pem);
            Console.Out.WriteLine($"private key: {privPath}");
            Console.Out.WriteLine($"public key:  {pubPath}");
            Console.Out.WriteLine($"key id:      {key.KeyId}");
            return Task.FromResult(ExitCodes.Approve);
        }));
        return cmd;
    }
}
