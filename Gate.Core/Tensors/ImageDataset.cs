using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Gate.Core.IO;
using SkiaSharp;

namespace Gate.Core.Tensors;

/// <summary>Caps on an image dataset: per file, per image (decoded pixels) and in total. Every cap is bad input naming the file.</summary>
public sealed record ImageLimits(long MaxFileBytes = 32L << 20, long MaxPixels = 4096L * 4096, int MaxFiles = 100_000, long MaxElements = Npy.MaxElements)
{
    public static ImageLimits Default { get; } = new();
}

/// <summary>
/// Where the samples came from: the kind of source, the files read and one SHA-256 over (relative path, label,
/// file SHA-256) of every sample in order, so an auditor can tell which files were decoded into the recorded tensor.
/// </summary>
public sealed record ImageSource(string Kind, int Files, string Sha256, IReadOnlyList<string>? Classes);

/// <summary>Decoded images: pixels [N, 3, H, W] float32 RGB in [0, 1], int64 labels [N], and their source.</summary>
public sealed record DecodedImages(Tensor Inputs, Tensor Labels, ImageSource Source);

/// <summary>
/// Reads an image dataset: a class-per-folder tree (torchvision ImageFolder: class folders sorted by name give the
/// label indices 0, 1, …; images anywhere below them, in sorted order) or a manifest of paths and labels (.csv with
/// a <c>path,label</c> header, or .jsonl with <c>{"path": …, "label": …}</c> per line; paths relative to the
/// manifest and inside its folder). PNG and JPEG only, told by their signature before any decoder sees the bytes,
/// decoded with Skia (SkiaSharp, version pinned: decoded pixels, and so digests, follow the decoder). Links are not
/// followed. Decoding happens on the host at plan time — see docs/threat-model.md ("Image datasets") for why.
/// </summary>
public static class ImageDataset
{
    public static readonly string[] ManifestExtensions = [".csv", ".jsonl"];
    private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg"];

    /// <summary>An image source: a folder (class-per-folder tree) or a .csv / .jsonl manifest; anything else is an array file.</summary>
    public static bool IsImageSource(string path) =>
        Directory.Exists(path) || ManifestExtensions.Contains(Path.GetExtension(path), StringComparer.OrdinalIgnoreCase);

    public static DecodedImages Read(string path, ImageGeometry? prep, ImageLimits? limits = null)
    {
        limits ??= ImageLimits.Default;
        var (kind, samples, classes) = Directory.Exists(path) ? ("image-folder", FromFolder(path, limits, out var c), c) : ("image-manifest", FromManifest(path, limits), null);
        if (samples.Count == 0) throw new GateInputException($"{path}: no PNG or JPEG images found");

        float[]? pixels = null;
        int h = 0, w = 0;
        var labels = new long[samples.Count];
        using var digest = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (int i = 0; i < samples.Count; i++)
        {
            var (file, rel, label) = samples[i];
            var bytes = RegularFile.ReadAll(file, "image", limits.MaxFileBytes);
            digest.AppendData(Encoding.UTF8.GetBytes($"{rel}\0{label}\0{Convert.ToHexStringLower(SHA256.HashData(bytes))}\n"));
            using var image = Geometry(Decode(bytes, file, limits), prep, file);
            if (pixels is null)
            {
                (h, w) = (image.Height, image.Width);
                long elements = (long)samples.Count * 3 * h * w;
                if (elements > limits.MaxElements)
                    throw new GateInputException($"{path}: {samples.Count} images of {w}×{h} make {elements} values, more than the limit of {limits.MaxElements}; declare resize/centerCrop or use fewer images");
                pixels = new float[elements];
            }
            else if (image.Height != h || image.Width != w)
                throw new GateInputException($"{file}: image is {image.Width}×{image.Height} but the first image ({samples[0].File}) is {w}×{h}; " +
                                             "declare preprocess resize/centerCrop on the model input so that all images have one size");
            Planes(image, pixels, i * 3 * h * w);
            labels[i] = label;
        }
        var source = new ImageSource(kind, samples.Count, Convert.ToHexStringLower(digest.GetHashAndReset()), classes);
        return new DecodedImages(Tensor.FromFloats([samples.Count, 3, h, w], pixels!), Tensor.FromLongs([samples.Count], labels), source);
    }

    /// <summary>The ImageFolder layout: sorted class folders (ordinal, as Python sorts names) → labels; images below each, sorted.</summary>
    private static List<(string File, string Rel, long Label)> FromFolder(string root, ImageLimits limits, out IReadOnlyList<string> classes)
    {
        var rootInfo = new DirectoryInfo(root);
        if (rootInfo.LinkTarget is not null) throw new GateInputException($"{root}: the image folder is a symbolic link; name the folder itself");
        var classDirs = rootInfo.EnumerateDirectories().Where(d => !d.Name.StartsWith('.')).OrderBy(d => d.Name, StringComparer.Ordinal).ToList();
        if (classDirs.Count == 0)
            throw new GateInputException($"{root}: no class folders; an image folder holds one folder per class (torchvision ImageFolder layout: {root}/<class>/<image>.png)");
        classes = classDirs.Select(d => d.Name).ToList();
        var samples = new List<(string, string, long)>();
        for (int label = 0; label < classDirs.Count; label++)
        {
            int before = samples.Count;
            Walk(classDirs[label], label);
            if (samples.Count == before)
                throw new GateInputException($"{classDirs[label].FullName}: class folder '{classDirs[label].Name}' holds no PNG or JPEG images");
        }
        return samples;

        void Walk(DirectoryInfo dir, int label)
        {
            if (dir.LinkTarget is not null) throw new GateInputException($"{dir.FullName}: a symbolic link in the image folder; links are not followed");
            foreach (var e in dir.EnumerateFileSystemInfos().Where(e => !e.Name.StartsWith('.')).OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                if (e is DirectoryInfo sub) { Walk(sub, label); continue; }
                if (!ImageExtensions.Contains(e.Extension, StringComparer.OrdinalIgnoreCase)) continue;
                if (e.LinkTarget is not null) throw new GateInputException($"{e.FullName}: a symbolic link in the image folder; links are not followed");
                if (samples.Count >= limits.MaxFiles) throw new GateInputException($"{root}: more than {limits.MaxFiles} images (the limit)");
                samples.Add((e.FullName, Path.GetRelativePath(root, e.FullName), label));
            }
        }
    }

    /// <summary>A .csv (header <c>path,label</c>) or .jsonl manifest; every path relative to the manifest and inside its folder.</summary>
    private static List<(string File, string Rel, long Label)> FromManifest(string manifest, ImageLimits limits)
    {
        var text = Encoding.UTF8.GetString(RegularFile.ReadAll(manifest, "image manifest", 64L << 20));
        var dir = Path.GetDirectoryName(Path.GetFullPath(manifest))!;
        bool csv = Path.GetExtension(manifest).Equals(".csv", StringComparison.OrdinalIgnoreCase);
        var lines = text.Split('\n');
        var samples = new List<(string, string, long)>();
        int pathCol = 0, labelCol = 1;
        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n].TrimEnd('\r');
            string where = $"{manifest}:{n + 1}";
            if (line.Trim().Length == 0) continue;
            string rel; long label;
            if (csv)
            {
                if (line.Contains('"')) throw new GateInputException($"{where}: quoted CSV fields are not supported; paths must not contain commas or quotes");
                var cells = line.Split(',').Select(c => c.Trim()).ToArray();
                if (n == 0 || (samples.Count == 0 && cells.Contains("path")))
                {
                    pathCol = Array.IndexOf(cells, "path"); labelCol = Array.IndexOf(cells, "label");
                    if (pathCol < 0 || labelCol < 0) throw new GateInputException($"{where}: the first line must be a header naming the columns path and label (got '{line}')");
                    continue;
                }
                if (cells.Length <= Math.Max(pathCol, labelCol)) throw new GateInputException($"{where}: {cells.Length} columns; expected path and label");
                rel = cells[pathCol];
                if (!long.TryParse(cells[labelCol], NumberStyles.None, CultureInfo.InvariantCulture, out label))
                    throw new GateInputException($"{where}: label '{cells[labelCol]}' is not a class index (a whole number ≥ 0)");
            }
            else
            {
                try
                {
                    using var doc = JsonDocument.Parse(line);
                    var o = doc.RootElement;
                    if (o.ValueKind != JsonValueKind.Object || !o.TryGetProperty("path", out var p) || p.ValueKind != JsonValueKind.String
                        || !o.TryGetProperty("label", out var l) || !l.TryGetInt64(out label) || label < 0)
                        throw new GateInputException($"{where}: expected {{\"path\": \"<image>\", \"label\": <class index ≥ 0>}}");
                    rel = p.GetString()!;
                }
                catch (JsonException e) { throw new GateInputException($"{where}: not JSON ({e.Message})"); }
            }
            if (rel.Length == 0 || Path.IsPathRooted(rel)) throw new GateInputException($"{where}: path '{rel}' must be relative to the manifest's folder");
            var full = Path.GetFullPath(Path.Combine(dir, rel));
            if (!full.StartsWith(dir + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new GateInputException($"{where}: path '{rel}' leaves the manifest's folder ({dir})");
            if (new FileInfo(full).LinkTarget is not null) throw new GateInputException($"{where}: {rel} is a symbolic link; links are not followed");
            if (samples.Count >= limits.MaxFiles) throw new GateInputException($"{manifest}: more than {limits.MaxFiles} images (the limit)");
            samples.Add((full, rel, label));
        }
        return samples;
    }

    /// <summary>
    /// Decodes one PNG or JPEG into an RGBA bitmap. The signature is checked first, the size is read from the header
    /// and capped before any pixel memory exists, and anything short of a complete decode is bad input.
    /// </summary>
    internal static SKBitmap Decode(byte[] bytes, string file, ImageLimits limits)
    {
        bool png = bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        bool jpeg = bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF]);
        if (!png && !jpeg) throw new GateInputException($"{file}: not a PNG or JPEG image (its first bytes are neither signature)");
        // Our own reading of the declared size, before the decoder sees a byte: a decompression bomb is refused here.
        if ((png ? PngSize(bytes) : JpegSize(bytes)) is var (dw, dh) && (long)dw * dh > limits.MaxPixels)
            throw new GateInputException($"{file}: image is {dw}×{dh} = {(long)dw * dh} pixels, more than the limit of {limits.MaxPixels}");
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data) ?? throw new GateInputException($"{file}: malformed {(png ? "PNG" : "JPEG")} image (the decoder cannot read its header)");
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > limits.MaxPixels)
            throw new GateInputException($"{file}: image is {info.Width}×{info.Height} = {(long)info.Width * info.Height} pixels, more than the limit of {limits.MaxPixels}");
        var target = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bitmap = new SKBitmap(target);
        var result = codec.GetPixels(target, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            bitmap.Dispose();
            throw new GateInputException($"{file}: malformed {(png ? "PNG" : "JPEG")} image (decoding ended with {result})");
        }
        return bitmap;
    }

    /// <summary>Width and height from the IHDR chunk (which must come first), or null when there is none.</summary>
    private static (long W, long H)? PngSize(byte[] b) =>
        b.Length >= 24 && b.AsSpan(12, 4).SequenceEqual("IHDR"u8)
            ? (System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(16)), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(20)))
            : null;

    /// <summary>Width and height from the first start-of-frame marker (SOF0–SOF15 but DHT, JPG, DAC), walking marker segments.</summary>
    private static (long W, long H)? JpegSize(byte[] b)
    {
        int i = 2;
        while (i + 4 <= b.Length)
        {
            if (b[i] != 0xFF) return null;
            byte marker = b[i + 1];
            if (marker == 0xFF) { i++; continue; }
            if (marker is 0xD8 or 0x01 or (>= 0xD0 and <= 0xD7)) { i += 2; continue; }
            int len = (b[i + 2] << 8) | b[i + 3];
            if (len < 2) return null;
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
                return i + 9 <= b.Length ? (((long)b[i + 7] << 8) | b[i + 8], ((long)b[i + 5] << 8) | b[i + 6]) : null;
            if (marker == 0xDA) return null; // scan data before any frame header
            i += 2 + len;
        }
        return null;
    }

    /// <summary>Resize (bilinear; [s]: shorter side to s, torchvision's rounding) then centre crop (torchvision's offsets).</summary>
    private static SKBitmap Geometry(SKBitmap image, ImageGeometry? prep, string file)
    {
        if (prep?.Resize is { } r)
        {
            int nh, nw;
            if (r.Length == 2) (nh, nw) = (r[0], r[1]);
            else if (image.Width <= image.Height) (nw, nh) = (r[0], (int)((long)r[0] * image.Height / image.Width));
            else (nh, nw) = (r[0], (int)((long)r[0] * image.Width / image.Height));
            if (nh != image.Height || nw != image.Width)
            {
                var resized = image.Resize(new SKImageInfo(nw, nh, SKColorType.Rgba8888, SKAlphaType.Unpremul), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None))
                    ?? throw new GateInputException($"{file}: cannot resize {image.Width}×{image.Height} to {nw}×{nh}");
                image.Dispose();
                image = resized;
            }
        }
        if (prep?.CenterCrop is [var ch, var cw])
        {
            if (ch > image.Height || cw > image.Width)
                throw new GateInputException($"{file}: image is {image.Width}×{image.Height} after resizing, smaller than the centre crop {cw}×{ch}; declare a larger resize");
            int top = (int)Math.Round((image.Height - ch) / 2.0, MidpointRounding.ToEven), left = (int)Math.Round((image.Width - cw) / 2.0, MidpointRounding.ToEven);
            var cropped = new SKBitmap(new SKImageInfo(cw, ch, SKColorType.Rgba8888, SKAlphaType.Unpremul));
            if (!image.ExtractSubset(cropped, new SKRectI(left, top, left + cw, top + ch)))
                throw new GateInputException($"{file}: cannot crop {cw}×{ch} at ({left}, {top})");
            var copy = cropped.Copy();
            cropped.Dispose(); image.Dispose();
            image = copy;
        }
        return image;
    }

    /// <summary>RGBA bytes → three planes of byte/255 (alpha dropped, as PIL's convert("RGB")).</summary>
    private static void Planes(SKBitmap image, float[] dst, int offset)
    {
        var span = image.GetPixelSpan();
        int plane = image.Width * image.Height, stride = image.RowBytes;
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
            {
                int s = y * stride + x * 4, p = y * image.Width + x;
                dst[offset + p] = span[s] / 255f;
                dst[offset + plane + p] = span[s + 1] / 255f;
                dst[offset + 2 * plane + p] = span[s + 2] / 255f;
            }
    }
}

/// <summary>
/// The geometry a declared preprocessing block applies when images are decoded (see <c>Model.Preprocessing</c>):
/// it decides which pixel grid exists, so it belongs to decoding, not to the graph.
/// </summary>
/// <param name="Resize">[size]: shorter side to size (aspect kept); [h, w]: exactly. Bilinear.</param>
/// <param name="CenterCrop">[h, w] cut from the centre after resizing.</param>
public sealed record ImageGeometry(int[]? Resize, int[]? CenterCrop);
