using System.Security.Cryptography;
using System.Text;
using Gate.Core.IO;

namespace Gate.Core.Attestation;

/// <summary>
/// An ECDSA P-256 public key (SubjectPublicKeyInfo PEM). Its key id is the hex SHA-256 of the DER
/// SubjectPublicKeyInfo, so anyone can recompute it from the PEM with standard tools.
/// </summary>
public sealed class VerificationKey
{
    private const string P256Oid = "1.2.840.10045.3.1.7";
    private readonly byte[] _spki;

    private VerificationKey(byte[] spki)
    {
        _spki = spki;
        KeyId = Convert.ToHexStringLower(SHA256.HashData(spki));
    }

    public string KeyId { get; }
    public string Pem => PemEncoding.WriteString("PUBLIC KEY", _spki) + "\n";

    /// <summary>Parses a "PUBLIC KEY" PEM block holding a P-256 key; <paramref name="source"/> names it in errors.</summary>
    public static VerificationKey FromPem(string pem, string source)
    {
        if (!PemEncoding.TryFind(pem, out var fields) || pem[fields.Label] is not "PUBLIC KEY")
            throw new GateInputException($"{source}: expected a PEM block '-----BEGIN PUBLIC KEY-----' (SubjectPublicKeyInfo, ECDSA P-256)");
        var der = Convert.FromBase64String(pem[fields.Base64Data].ToString());
        using var ec = ECDsa.Create();
        try { ec.ImportSubjectPublicKeyInfo(der, out _); }
        catch (CryptographicException e) { throw new GateInputException($"{source}: not an ECDSA public key ({e.Message})"); }
        RequireP256(ec, source);
        return new VerificationKey(ec.ExportSubjectPublicKeyInfo());
    }

    public static VerificationKey Load(string path) => FromPem(ReadKeyFile(path, "public key"), path);

    /// <summary>True when <paramref name="signature"/> (DER, as Sigstore and openssl produce) signs <paramref name="data"/>.</summary>
    public bool Verify(byte[] data, byte[] signature)
    {
        using var ec = ECDsa.Create();
        ec.ImportSubjectPublicKeyInfo(_spki, out _);
        try { return ec.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence); }
        catch (CryptographicException) { return false; }
    }

    internal static void RequireP256(ECDsa ec, string source)
    {
        var curve = ec.ExportParameters(false).Curve;
        if (!curve.IsNamed || curve.Oid.Value != P256Oid)
            throw new GateInputException($"{source}: the key is not on curve P-256 (Gate signs with ECDSA P-256 / SHA-256 only)");
    }

    internal static string ReadKeyFile(string path, string what) =>
        Encoding.ASCII.GetString(UntrustedInput.ReadRegularFile(path, 64 * 1024, $"{what} file"));
}

/// <summary>
/// An ECDSA P-256 private key (PKCS#8 PEM). It is used only on the host, after the sandbox has returned: nothing
/// that enters a sandbox job refers to it.
/// </summary>
public sealed class SigningKey : IDisposable
{
    private readonly ECDsa _ec;

    private SigningKey(ECDsa ec)
    {
        _ec = ec;
        Public = VerificationKey.FromPem(PemEncoding.WriteString("PUBLIC KEY", ec.ExportSubjectPublicKeyInfo()), "generated key");
    }

    public VerificationKey Public { get; }
    public string KeyId => Public.KeyId;

    public static SigningKey Generate() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256));

    public static SigningKey FromPem(string pem, string source)
    {
        if (!PemEncoding.TryFind(pem, out var fields) || pem[fields.Label] is not "PRIVATE KEY")
            throw new GateInputException($"{source}: expected a PEM block '-----BEGIN PRIVATE KEY-----' (unencrypted PKCS#8, ECDSA P-256)");
        var der = Convert.FromBase64String(pem[fields.Base64Data].ToString());
        var ec = ECDsa.Create();
        try
        {
            ec.ImportPkcs8PrivateKey(der, out _);
            VerificationKey.RequireP256(ec, source);
            return new SigningKey(ec);
        }
        catch (CryptographicException e) { ec.Dispose(); throw new GateInputException($"{source}: not an ECDSA private key ({e.Message})"); }
        catch { ec.Dispose(); throw; }
    }

    public static SigningKey Load(string path) => FromPem(VerificationKey.ReadKeyFile(path, "private key"), path);

    public string PrivatePem => PemEncoding.WriteString("PRIVATE KEY", _ec.ExportPkcs8PrivateKey()) + "\n";

    /// <summary>ECDSA P-256 over SHA-256(data), DER-encoded (RFC 3279), the encoding Sigstore and openssl use.</summary>
    public byte[] Sign(byte[] data) => _ec.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);

    public void Dispose() => _ec.Dispose();
}
